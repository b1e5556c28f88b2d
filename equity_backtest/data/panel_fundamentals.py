"""Fundamentals in the panel (D6): each metric's reports as a series sorted for as-of lookups,
with the trading day from which each is public, and the lookup itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from .datalog.checks import in_key_order


@dataclasses.dataclass
class FundamentalSeries:
    """One metric's reports sorted by (ticker, period end, public day) for as-of lookups."""

    ticker: np.ndarray  # int codes into Panel.tickers
    period_end: np.ndarray  # datetime64[ns]
    public_day: np.ndarray  # first trading-day index at whose close the value is known
    value: np.ndarray


def fundamental_series(
    fund: pd.DataFrame,
    src: str,
    cols: np.ndarray,
    dates: pd.DatetimeIndex,
    lag_days: Callable[[str], int],
    later_days: int = 0,
) -> dict[str, FundamentalSeries]:
    """Each metric's reports of the source (rows whose ticker code in `cols` is not -1), public
    at their announcement, or `lag_days(metric)` after the period end where undated, and
    `later_days` after that; by metric name."""
    metrics = fund["metric"]
    if isinstance(metrics.dtype, pd.CategoricalDtype):  # (the builder's: sorted categories)
        names, ids = metrics.cat.categories, metrics.cat.codes.to_numpy()
    else:
        ids, names = pd.factorize(metrics.to_numpy(), sort=True)
    rows = np.flatnonzero((fund["source"] == src).to_numpy() & (cols >= 0) & (ids >= 0))
    if not len(rows):
        return {}
    # by metric, then (ticker, period end, public day), rows of equal keys in table order: the
    # builder's table is in (ticker, period end, announcement) order already, so a stable sort
    # by metric alone is checked, and the rows sorted by every key only where it falls short
    rows = rows[np.argsort(ids[rows], kind="stable")]
    ids, cols = ids[rows], cols[rows]
    period_end = fund["period_end"].to_numpy()[rows]
    announced = fund["announcement_date"].to_numpy()[rows]
    later = pd.Timedelta(days=later_days)
    lag = np.array([pd.Timedelta(days=lag_days(str(m))) for m in names], "m8[ns]")
    public = np.where(np.isnat(announced), period_end + lag[ids], announced) + later.to_numpy()
    public_day = dates.searchsorted(public)  # visible at that day's close
    value = fund["value"].to_numpy(dtype=float)[rows]
    if not in_key_order([ids, cols, period_end, public_day], strict=False):
        order = np.lexsort((public_day, period_end, cols, ids))
        ids, cols, period_end, public_day, value = (
            a[order] for a in (ids, cols, period_end, public_day, value)
        )
    counts = np.bincount(ids, minlength=len(names))
    ends = np.cumsum(counts)
    out = {}
    for m in np.flatnonzero(counts):
        at = slice(ends[m] - counts[m], ends[m])
        out[str(names[m])] = FundamentalSeries(cols[at], period_end[at], public_day[at], value[at])
    return out


def latest_fundamentals(
    series: FundamentalSeries, t: int, n_tickers: int
) -> tuple[np.ndarray, np.ndarray]:
    """As-of lookup at the close of day t: per ticker, the latest period public by then.

    Returns (values, period_end) arrays of length n_tickers (NaN / NaT where nothing is known yet).
    """
    idx = np.flatnonzero(series.public_day <= t)
    values = np.full(n_tickers, np.nan)
    period = np.full(n_tickers, np.datetime64("NaT"), dtype="datetime64[ns]")
    if len(idx):
        tick = series.ticker[idx]
        last = idx[np.r_[tick[1:] != tick[:-1], True]]
        values[series.ticker[last]] = series.value[last]
        period[series.ticker[last]] = series.period_end[last]
    return values, period
