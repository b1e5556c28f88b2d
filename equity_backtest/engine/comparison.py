"""What a run is compared against (V1): the index itself, or a series supplied in the data.

benchmark = "index" (the default): the cap-weighted total return of the index members, point in
time. Each bar's return weights the members of the list in force at the previous close by their
market capitalisation at that close, and uses each member's total return (splits, dividends and
delisting values included, panel.total_return). A bankrupt member drags the index down, as it
would a fund that held it. On a bar where no member has a market cap the index return cannot be
computed: it is missing (NaN), never 0, and 03 warns.

benchmark = "<ticker>": that security's total return (close to close, with its dividends and
splits), e.g. an index's total-return series imported like any ticker. It must be in the data.

Computed by 03 from the panel and stored in the run archive, so that 04 needs only the archive;
04 compares against a benchmark only where it is complete.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.panel import Panel
from ..errors import BadInputError

INDEX = "index"


def index_caps(panel: Panel, days: np.ndarray) -> np.ndarray:
    """days x tickers: what each member in force weighs in the index over each of `days`, its
    market cap at the previous close (0 for a non-member or an unknown cap)."""
    caps = pd.DataFrame(panel.fields["market_cap"]).ffill().to_numpy(copy=True)
    caps[~np.isfinite(panel.mark)] = np.nan  # gone after delisting, never carried forward
    k = panel.list_of_day[days - 1]
    members = np.where((k >= 0)[:, None], panel.membership[np.maximum(k, 0)], False)
    return np.where(members & np.isfinite(caps[days - 1]), caps[days - 1], 0.0)


def index_returns(panel: Panel, t0: int, t1: int) -> pd.Series:
    """Per-bar index returns for bars t0..t1 (the first is 0: nothing is held yet); NaN on a bar
    where no member in force has a known market cap."""
    out = np.zeros(t1 - t0 + 1)
    days = np.arange(t0 + 1, t1 + 1)
    if len(days):
        weight = index_caps(panel, days)
        total = weight.sum(axis=1)
        earned = (weight * np.nan_to_num(panel.total_return[days])).sum(axis=1)
        out[1:] = np.where(total > 0, earned / np.where(total > 0, total, 1.0), np.nan)
    return pd.Series(out, index=panel.dates[t0 : t1 + 1], name="benchmark")


def series_returns(panel: Panel, ticker: str, t0: int, t1: int) -> pd.Series:
    """Per-bar total returns of one security in the panel (the first bar is 0)."""
    where = np.flatnonzero(panel.tickers == ticker)
    if not len(where):
        raise BadInputError(
            f"parameter 'benchmark' = {ticker!r}: no such ticker in the data of source "
            f"'{panel.source}'; import its series like any ticker, or use benchmark = 'index'"
        )
    out = panel.total_return[t0 : t1 + 1, where[0]].copy()
    out[0] = 0.0
    return pd.Series(out, index=panel.dates[t0 : t1 + 1], name="benchmark")


def benchmark_returns(panel: Panel, name: str, t0: int, t1: int) -> tuple[pd.Series, list[str]]:
    """The benchmark named in parameters.py over bars t0..t1, and warnings about its gaps."""
    series = index_returns(panel, t0, t1) if name == INDEX else series_returns(panel, name, t0, t1)
    missing = int(series.isna().sum())
    warnings = []
    if missing:
        what = (
            f"the cap-weighted {panel.index} index cannot be computed on {missing} of "
            f"{len(series)} bars (no market caps for its members there)"
            if name == INDEX
            else f"the benchmark {name} has no price on {missing} of {len(series)} bars"
        )
        warnings.append(
            f"{what}; 04 will not compare against it. Import market caps, or supply a benchmark "
            "series (benchmark = '<ticker>')"
        )
    return series, warnings
