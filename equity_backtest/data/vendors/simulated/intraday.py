"""The simulated market's prices inside a session (E12): what a live account's intraday
heartbeat asks a vendor for ("the latest price"), for the tests and for paper trading on the
simulated market.

For a ticker and a session, a minute-by-minute path from the day's open to its close: a
Brownian bridge (seeded by the market's seed, the ticker and the day, so the same moment always
gives the same price), scaled to the day's range and kept inside [low, high]. Before the open it
is the open, after the close the close. Only days the market has logged are priced.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from ... import calendars


def _path(seed: int, ticker: str, day: dt.date, row, minutes: int) -> np.ndarray:
    digest = hashlib.sha256(f"{seed}:{ticker}:{day:%Y-%m-%d}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    steps = rng.standard_normal(minutes).cumsum()
    k = np.arange(1, minutes + 1)
    bridge = steps - k / minutes * steps[-1]  # 0 at both ends
    scale = (row.high - row.low) / max(np.ptp(bridge), 1e-12)
    line = row.open + (row.close - row.open) * k / minutes
    return np.clip(line + bridge * scale * 0.5, row.low, row.high)


def prices(market: pd.DataFrame, seed: int, exchange: str, moment: pd.Timestamp) -> pd.Series:
    """The latest price of each ticker of `market` (its rows of the moment's session: ticker,
    open, high, low, close) at `moment` (UTC)."""
    day = moment.tz_convert("UTC").date()
    session = calendars.schedule(exchange, day, day)
    if session.empty:
        raise ValueError(f"{day} is no session of {exchange}")
    open_, close = session["open"].iloc[0], session["close"].iloc[0]
    minutes = int((close - open_).total_seconds() // 60)  # (an early close has fewer)
    minute = int(np.clip((moment - open_).total_seconds() // 60, 0, minutes))
    out = {}
    for row in market.itertuples():
        if minute == 0:
            out[row.ticker] = float(row.open)
        else:
            out[row.ticker] = float(_path(seed, str(row.ticker), day, row, minutes)[minute - 1])
    return pd.Series(out, dtype=float)
