"""Evaluation tables (V3): drawdown periods, stress events, calendar returns, rolling statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import DAYS_PER_YEAR, drawdown

# Classic market stress episodes (name, first day, last day): the ones inside a run are reported.
STRESS_EVENTS = (
    ("Dot-com crash", "2000-03-10", "2002-10-09"),
    ("9/11", "2001-09-11", "2001-10-11"),
    ("Quant quake (Aug 2007)", "2007-08-01", "2007-08-31"),
    ("Bear Stearns (Mar 2008)", "2008-03-01", "2008-03-31"),
    ("Lehman (Sep 2008)", "2008-09-01", "2008-09-30"),
    ("2008 crisis to the 2009 low", "2008-09-15", "2009-03-09"),
    ("Flash Crash", "2010-05-05", "2010-05-10"),
    ("US downgrade (Aug 2011)", "2011-08-01", "2011-08-31"),
    ("China selloff (2015)", "2015-08-11", "2015-09-30"),
    ("Volmageddon (Feb 2018)", "2018-02-01", "2018-02-15"),
    ("Q4 2018 selloff", "2018-10-01", "2018-12-24"),
    ("COVID crash", "2020-02-19", "2020-03-23"),
    ("2022 rate shock", "2022-01-03", "2022-10-12"),
    ("US regional banks (Mar 2023)", "2023-03-08", "2023-03-31"),
)


def drawdown_periods(returns: pd.Series, top: int = 5) -> pd.DataFrame:
    """The `top` deepest drawdowns: peak (last high before it), valley, recovery (first day back at
    the peak, or None), depth and duration in calendar days (to recovery, or to the last day)."""
    dd = pd.Series(drawdown(returns.to_numpy()), index=returns.index)
    under = dd < 0
    rows = []
    start = None
    for i, flag in enumerate(under.to_numpy()):
        if flag and start is None:
            start = i
        if start is not None and (not flag or i == len(dd) - 1):
            end = i if not flag else None  # recovery index, None if the run ends under water
            window = dd.iloc[start : (end if end is not None else len(dd))]
            valley = window.idxmin()
            peak = dd.index[start - 1] if start > 0 else None
            recovery = dd.index[end] if end is not None else None
            last = recovery if recovery is not None else dd.index[-1]
            first = peak if peak is not None else dd.index[0]
            rows.append(
                {
                    "peak": peak,
                    "valley": valley,
                    "recovery": recovery,
                    "depth": float(window.min()),
                    "duration_days": int((last - first).days),
                    "recovered": recovery is not None,
                }
            )
            start = None
    frame = pd.DataFrame(
        rows, columns=["peak", "valley", "recovery", "depth", "duration_days", "recovered"]
    )
    return frame.sort_values("depth", kind="stable").head(top).reset_index(drop=True)


def stress_events(
    returns: pd.Series,
    benchmark: pd.Series,
    source: str | None = None,
    regimes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cumulative return of the portfolio and the index over each stress episode inside the run.

    Real-world episodes are named only on real data: the simulated market's days are not those
    of the real events. On simulated data the episodes are the market's own, as the simulator
    planted them (`regimes`: start, end, regime; the dataset's regimes table): its bear markets,
    crashes, recoveries, corrections and high-volatility spells."""
    rows = []
    first, last = returns.index[0], returns.index[-1]
    if source == "simulated":
        own = regimes if regimes is not None else pd.DataFrame(columns=["start", "end", "regime"])
        episodes = [
            (f"{r.regime} (simulated)", r.start, r.end) for r in own.itertuples(index=False)
        ]
    else:
        episodes = STRESS_EVENTS
    for name, a, b in episodes:
        a, b = pd.Timestamp(a), pd.Timestamp(b)
        if a < first or b > last:
            continue
        window = (returns.index >= a) & (returns.index <= b)
        if not window.any():
            continue
        rows.append(
            {
                "event": name,
                "start": a,
                "end": b,
                "portfolio": float(np.prod(1 + returns[window]) - 1),
                "index": float(np.prod(1 + benchmark[window]) - 1),
            }
        )
    return pd.DataFrame(rows, columns=["event", "start", "end", "portfolio", "index"])


def monthly_returns(returns: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar month: rows years, columns months 1-12."""
    monthly = (1 + returns).groupby([returns.index.year, returns.index.month]).prod() - 1
    table = monthly.unstack()
    table.index.name, table.columns.name = "year", "month"
    return table.reindex(columns=range(1, 13))


def yearly_returns(returns: pd.Series, benchmark: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar year, portfolio and index."""
    year = returns.index.year
    return pd.DataFrame(
        {
            "portfolio": (1 + returns).groupby(year).prod() - 1,
            "index": (1 + benchmark).groupby(year).prod() - 1,
        }
    ).rename_axis("year")


def rolling_stats(
    returns: pd.Series, benchmark: pd.Series, rf_daily: float, periods: int = DAYS_PER_YEAR
) -> pd.DataFrame:
    """Rolling 6- and 12-month Sharpe ratio, annual volatility and beta: windows of P/2 and P bars
    (126 and 252 daily bars, 6 and 12 monthly ones)."""
    out = {}
    x, y = returns - rf_daily, benchmark - rf_daily
    for label, n in (("6m", max(periods // 2, 2)), ("12m", periods)):
        mean, sd = x.rolling(n).mean(), x.rolling(n).std()
        out[f"sharpe_{label}"] = mean / sd * np.sqrt(periods)
        out[f"volatility_{label}"] = returns.rolling(n).std() * np.sqrt(periods)
        out[f"beta_{label}"] = x.rolling(n).cov(y) / y.rolling(n).var()
    return pd.DataFrame(out)
