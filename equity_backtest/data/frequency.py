"""Bar frequency (daily, weekly, monthly or quarterly bars) and the per-bar rates that follow.

Research data is often monthly (CRSP monthly files, Fama-French portfolios) or weekly. Each
heartbeat of the engine is one bar of the data; every annualised figure, rolling window and
per-bar rate uses the bars per year of the data's frequency: 252 daily, 52 weekly, 12 monthly,
4 quarterly. The frequency is inferred from the median spacing of the trading dates (up to 4
calendar days: daily, up to 10: weekly, up to 45: monthly, up to 120: quarterly) unless
parameters.py sets `bar_frequency`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BadInputError

PERIODS_PER_YEAR = {"daily": 252, "weekly": 52, "monthly": 12, "quarterly": 4}
FREQUENCIES = ("auto", *PERIODS_PER_YEAR)
MAX_SPACING_DAYS = {"daily": 4, "weekly": 10, "monthly": 45, "quarterly": 120}


def infer(dates: pd.DatetimeIndex) -> str:
    """The bar frequency of a calendar from the median number of calendar days between bars."""
    if len(dates) < 2:
        return "daily"
    seconds = pd.DatetimeIndex(dates).to_numpy().astype("datetime64[s]").astype(np.int64)
    spacing = float(np.median(np.diff(seconds)) / 86_400)
    for name, limit in MAX_SPACING_DAYS.items():
        if spacing <= limit:
            return name
    raise BadInputError(
        f"the data's bars are {spacing:.0f} calendar days apart (median); supported are daily, "
        "weekly, monthly and quarterly bars"
    )


def resolve(setting: str, dates: pd.DatetimeIndex) -> str:
    """`bar_frequency` from parameters.py, or the inferred one for 'auto'. A setting that
    contradicts the data (monthly bars declared daily) is an error, not a silent mis-scaling."""
    found = infer(dates)
    if setting in ("auto", found):
        return found
    raise BadInputError(
        f"parameter 'bar_frequency' = {setting!r}, but the data's bars are {found} (median "
        f"spacing of its dates); set bar_frequency = 'auto' or {found!r}"
    )


def periodic_rate(annual_rate: float, periods_per_year: int) -> float:
    """The rate per bar that compounds to `annual_rate` over a year of bars."""
    return (1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0
