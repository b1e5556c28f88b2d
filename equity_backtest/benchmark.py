"""The index benchmark (V1): the cap-weighted total return of the index members, point in time.

Each day's return weights the members of the list in force at the previous close by their market
capitalisation at that close, and uses each member's total return (splits, dividends and
delisting values included, panel.total_return). A bankrupt member drags the index down, as it
would a fund that held it. Computed by 03 from the panel and stored in the run archive, so that
04 needs only the archive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .panel import Panel


def index_returns(panel: Panel, t0: int, t1: int) -> pd.Series:
    """Daily benchmark returns for days t0..t1 (the first day's return is 0: nothing is held yet)."""
    caps = pd.DataFrame(panel.fields["market_cap"]).ffill().to_numpy(copy=True)
    caps[~np.isfinite(panel.mark)] = np.nan  # gone after delisting, never carried forward
    out = np.zeros(t1 - t0 + 1)
    days = np.arange(t0 + 1, t1 + 1)
    if len(days):
        k = panel.list_of_day[days - 1]
        members = np.where((k >= 0)[:, None], panel.membership[np.maximum(k, 0)], False)
        weight = np.where(members & np.isfinite(caps[days - 1]), caps[days - 1], 0.0)
        total = weight.sum(axis=1)
        earned = (weight * np.nan_to_num(panel.total_return[days])).sum(axis=1)
        out[1:] = np.where(total > 0, earned / np.where(total > 0, total, 1.0), 0.0)
    return pd.Series(out, index=panel.dates[t0 : t1 + 1], name="benchmark")
