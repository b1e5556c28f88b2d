"""Heartbeats and rebalance days (E1, E3).

The backtest runs over the trading days from `start` to `end`, both inclusive. On a rebalance
day the algorithm decides after that day's close; its orders fill on the next trading day (at
the open by default). So there is no decision on the last heartbeat: nothing could fill.
`never` means one initial allocation on the first heartbeat, then buy and hold. Weekly, monthly,
quarterly and yearly rebalances fall on the first heartbeat of each period (and the first one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BadInputError


def heartbeat_range(dates: pd.DatetimeIndex, start, end) -> tuple[int, int]:
    """Indices (first, last) of the trading days in [start, end], inclusive."""
    t0 = int(dates.searchsorted(pd.Timestamp(start), side="left"))
    t1 = int(dates.searchsorted(pd.Timestamp(end), side="right")) - 1
    if t0 > t1 or t0 >= len(dates):
        raise BadInputError(
            f"no trading days between start={pd.Timestamp(start).date()} and end={pd.Timestamp(end).date()} "
            f"in the data ({dates[0].date()} to {dates[-1].date()})"
        )
    return t0, t1


def rebalance_days(
    dates: pd.DatetimeIndex, t0: int, t1: int, rule: str | int, live: bool = False
) -> np.ndarray:
    """Bool array over all dates: True where the algorithm is called after the close. Live,
    the last day is a day like any other: tomorrow's bar will come to fill its orders."""
    mask = np.zeros(len(dates), dtype=bool)
    window = dates[t0 : t1 + 1]
    if isinstance(rule, int):
        sel = np.arange(len(window)) % rule == 0
    elif rule == "daily":
        sel = np.ones(len(window), dtype=bool)
    elif rule == "never":
        sel = np.arange(len(window)) == 0
    else:
        period = {"weekly": "W", "monthly": "M", "quarterly": "Q", "yearly": "Y"}[rule]
        codes = np.asarray(window.to_period(period).asi8)
        sel = np.r_[True, codes[1:] != codes[:-1]]
    mask[t0 : t1 + 1] = sel
    if not live:
        mask[t1] = False  # a decision on the last day could never fill inside the backtest
    return mask
