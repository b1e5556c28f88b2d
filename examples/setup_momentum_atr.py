"""A setup study's worked example: long the strong, stop 1.5 ATR below, target the nearest resistance.

Every study day, for every index member with a year of prices: the 12-1 momentum and the
beta-residual momentum as percentiles across the members (1 = strongest), the 14-day average true
range (ATR), a long entry at the next open, a stop 1.5 ATR under today's close, a target at the
nearest resistance (the lowest swing high of the last 120 days above the close; none: no target,
the setup runs to its horizon) and a 30-bar time exit. A setup qualifies when both percentiles
reach GATES. Grade it with

    python -m equity_backtest.research.setups --setups examples/setup_momentum_atr.py
"""

import warnings

import numpy as np
import pandas as pd

from equity_backtest.research import themes

GATES = {"momentum_pct": 0.8, "residual_momentum_pct": 0.7}
ATR_DAYS, ATR_STOP, HORIZON, RESISTANCE_DAYS, SWING = 14, 1.5, 30, 120, 5


def setups(view, params):
    members = view.universe
    momentum = themes.momentum_12_1(view).reindex(members)
    residual = themes.residual_momentum(view, 252, 21, 756).reindex(members)
    high = view.history("high", RESISTANCE_DAYS, members, split_adjusted=True)
    low = view.history("low", ATR_DAYS + 1, members, split_adjusted=True)
    close = view.history("close", RESISTANCE_DAYS, members, split_adjusted=True)
    prev_close = close.shift(1).iloc[-ATR_DAYS:]
    true_range = np.maximum(high.iloc[-ATR_DAYS:], prev_close) - np.minimum(
        low.iloc[-ATR_DAYS:], prev_close
    )
    atr = true_range.mean()
    last = close.iloc[-1]
    frame = pd.DataFrame(
        {
            "direction": 1,
            "stop": last - ATR_STOP * atr,
            "target": _nearest_resistance(high, last),
            "horizon": HORIZON,
            "entry": "next_open",
            "momentum_pct": momentum.rank(pct=True),
            "residual_momentum_pct": residual.rank(pct=True),
            "atr_pct_of_price": atr / last,
        }
    )
    return frame.dropna(subset=["stop", "momentum_pct", "residual_momentum_pct"])


def _nearest_resistance(high: pd.DataFrame, last: pd.Series) -> pd.Series:
    """The lowest swing high (a high above every high SWING days either side) above the close."""
    values = high.to_numpy()
    window = 2 * SWING + 1
    padded = np.pad(values, ((SWING, SWING), (0, 0)), constant_values=np.nan)
    rolling = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # windows before a ticker's first price
        peak = values >= np.nanmax(rolling, axis=-1)
    peak[-SWING:] = False  # a high in the last days is not yet a confirmed swing high
    above = np.where(peak & (values > last.to_numpy()), values, np.inf)
    nearest = above.min(axis=0)
    return pd.Series(np.where(np.isfinite(nearest), nearest, np.nan), index=high.columns)
