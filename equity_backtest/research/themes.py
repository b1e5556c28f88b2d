"""Scores behind the bundled strategies in strategies/ (S2): each takes the point-in-time view and
returns one number per index member, higher meaning more attractive. Pure functions of what the
view shows, so factor research (S3) can study the same scores the strategies trade on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

EXCLUDED_BY_GREENBLATT = ("Financials", "Utilities")


def top_n_equal(score: pd.Series, n: int) -> pd.Series:
    """Equal weights on the n highest scores (ties broken by ticker, so results are reproducible)."""
    s = score.dropna()
    s = s[np.isfinite(s.to_numpy(dtype=float))]
    if s.empty:
        return pd.Series(dtype=float)
    order = np.lexsort(
        (s.index.astype(str).to_numpy(), -s.to_numpy(dtype=float))
    )  # score desc, ticker asc
    chosen = s.index[order[:n]]
    return pd.Series(1.0 / len(chosen), index=chosen)


def book_to_market(view) -> pd.Series:
    """Total equity (latest public report) / market cap; firms with non-positive book are left out."""
    u = view.universe
    book = view.fundamentals(["total_equity"], tickers=u)["total_equity"]
    cap = view.market(u)["market_cap"]
    return (book / cap).where((book > 0) & (cap > 0))


def magic_formula_ranks(frame: pd.DataFrame) -> pd.DataFrame:
    """Greenblatt's ranks from a table with ebit, market_cap, total_debt, cash, current_assets,
    current_liabilities, net_fixed_assets and sector (index: tickers).

    earnings yield = EBIT / enterprise value, EV = market cap + total debt - cash
    return on capital = EBIT / (net working capital + net fixed assets),
        net working capital = current assets - current liabilities
    Each is ranked (1 = best, ties share the lowest rank); the combined rank is their sum, lowest
    best. Financials and utilities are excluded, as are firms with non-positive EV or capital.
    """
    f = frame[~frame["sector"].isin(EXCLUDED_BY_GREENBLATT)].copy()
    ev = f["market_cap"] + f["total_debt"] - f["cash"]
    capital = f["current_assets"] - f["current_liabilities"] + f["net_fixed_assets"]
    f = f[(ev > 0) & (capital > 0)].assign(
        earnings_yield=(f["ebit"] / ev), return_on_capital=f["ebit"] / capital
    )
    f = f.dropna(subset=["earnings_yield", "return_on_capital"])
    f["ey_rank"] = f["earnings_yield"].rank(ascending=False, method="min")
    f["roc_rank"] = f["return_on_capital"].rank(ascending=False, method="min")
    f["combined_rank"] = f["ey_rank"] + f["roc_rank"]
    return f.sort_values(["combined_rank", "ey_rank"], kind="stable")


def magic_formula(view) -> pd.Series:
    """Minus the Magic Formula combined rank (so higher is better), from the latest public books;
    EBIT is the latest quarter's, annualised x 4."""
    u = view.universe
    cols = [
        "ebit",
        "total_debt",
        "cash",
        "current_assets",
        "current_liabilities",
        "net_fixed_assets",
    ]
    frame = view.fundamentals(cols, tickers=u)
    frame["ebit"] *= 4
    frame["market_cap"] = view.market(u)["market_cap"]
    frame["sector"] = view.metadata.reindex(u)["sector"]
    return -magic_formula_ranks(frame.dropna())["combined_rank"]


def momentum_12_1(view, lookback: int = 252, skip: int = 21) -> pd.Series:
    """Total return from `lookback` to `skip` trading days ago (12-1 momentum)."""
    r = view.returns(lookback, tickers=view.universe)
    window = r.iloc[: max(len(r) - skip, 0)]
    enough = window.notna().sum() >= 0.8 * (lookback - skip)
    return ((1 + window.fillna(0.0)).prod() - 1).where(enough)


def residual_momentum(
    view, lookback: int = 252, skip: int = 21, estimation: int = 756
) -> pd.Series:
    """Beta-adjusted residual momentum (Blitz, Huij and Martens): regress each member's daily total
    returns on the cap-weighted return of the members over the `estimation` days (36 months)
    ending `skip` days ago; the score is the sum of the residuals over the formation window (from
    `lookback` to `skip` days ago) divided by their standard deviation. (Residuals over the whole
    estimation window would sum to zero; those of the formation window carry the signal.)"""
    u = view.universe
    r = view.returns(estimation, tickers=u).iloc[: -skip or None]
    caps = view.market(u)["market_cap"].fillna(0.0)
    x = ((r.fillna(0.0) * caps).sum(axis=1) / caps.sum()).to_numpy()[:, None]
    y = r.to_numpy()
    ok = np.isfinite(y)
    n = ok.sum(axis=0)
    xm, ym = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    sx, sy = xm.sum(axis=0), ym.sum(axis=0)
    sxx, sxy = (xm * xm).sum(axis=0), (xm * ym).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns with too few days
        beta = (n * sxy - sx * sy) / (n * sxx - sx * sx)  # OLS per column on its own valid days
        alpha = (sy - beta * sx) / n
        formation = np.where(ok, y - alpha - beta * x, np.nan)[-(lookback - skip) :]
        score = np.nansum(formation, axis=0) / np.nanstd(formation, axis=0, ddof=1)
    enough = (np.isfinite(formation).sum(axis=0) >= 0.8 * (lookback - skip)) & (
        n >= 0.8 * min(len(y), estimation - skip)
    )
    return pd.Series(np.where(enough, score, np.nan), index=r.columns)


def low_volatility(view, days: int = 252) -> pd.Series:
    """Minus the standard deviation of daily total returns over `days` (calmest scores highest)."""
    r = view.returns(days, tickers=view.universe)
    return -r.std().where(r.notna().sum() >= 0.8 * days)


def gross_profitability(view) -> pd.Series:
    """Gross profit / total assets from the latest public report (Novy-Marx's quality)."""
    f = view.fundamentals(["gross_profit", "total_assets"], tickers=view.universe)
    return (f["gross_profit"] / f["total_assets"]).where(f["total_assets"] > 0)


def dividend_yield(view, days: int = 252) -> pd.Series:
    """Cash dividends per share over the last `days` trading days / the latest close."""
    u = view.universe
    close = view.market(u)["close"]
    return (view.dividends(days, tickers=u) / close).where(close > 0)


def random_score(view, seed: int) -> pd.Series:
    """A random score per member, seeded by (seed, date): the same draw whatever ran before."""
    u = view.universe
    rng = np.random.default_rng([seed, int(view.date.strftime("%Y%m%d"))])
    return pd.Series(rng.random(len(u)), index=u)
