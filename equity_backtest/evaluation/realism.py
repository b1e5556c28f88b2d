"""Does the simulated market look like a large-cap equity index? Its stylized facts, measured.

    python -m equity_backtest.evaluation.realism [--seed 42] [--tickers 300] [--index-size 100] [--json]
    python -m equity_backtest.evaluation.realism --seeds 1 2 3 ...      (one line per seed: which ranges fail)

Measured from the simulated market's own tables (the ground truth, before any datalog):
  concentration   the largest member's and the top 10's share of the index, and the largest
                  sector's, at their worst day (cap weights of the members on each list day);
  index           annualised volatility, its drawdowns (deep ones of 35-55%, corrections of
                  10-20%), daily excess kurtosis, volatility clustering (mean autocorrelation of
                  absolute daily returns over lags 1-20) and the premium over cash a year;
  stocks          median annualised volatility of the members, their mean pairwise correlation
                  overall and in the index's worst drawdown, dividend yield of payers, splits a year;
  turnover        members replaced a year as a share of the index, and by cause (ranking,
                  takeover, bankruptcy);
  fundamentals    median earnings yield, book-to-market and operating margin; median days from
                  quarter end to announcement.
Each figure is checked against a target range (TARGETS: large-cap stylized facts, as issue 15
states them); the report says which pass. The index is the cap-weighted, daily rebalanced
portfolio of the members of each list, with dividends, splits and delisting values in its returns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math

import numpy as np
import pandas as pd

from ..data.panel import Panel, PanelSpec, panel_from_tables
from ..data.vendors import simulated
from ..engine import comparison

TRADING_DAYS = 252
RISK_FREE = 0.02
# figure -> (low, high): the large-cap ranges the default market should fall in
TARGETS = {
    "largest_member_max_weight": (0.0, 0.08),
    "top10_max_weight": (0.0, 0.35),
    "largest_sector_max_weight": (0.0, 0.35),
    "index_annual_volatility": (0.14, 0.22),
    "index_max_drawdown": (-0.55, -0.35),
    "deep_drawdowns_35_55": (1, 2),
    "corrections_10_20": (2, 10),
    "index_daily_excess_kurtosis": (1.0, math.inf),
    "abs_return_autocorrelation": (0.05, math.inf),
    "equity_premium": (0.02, 0.08),
    "median_stock_volatility": (0.25, 0.40),
    "mean_pairwise_correlation": (0.2, 0.4),
    "median_payer_dividend_yield": (0.01, 0.03),
    "splits_per_year": (1.0, 20.0),
    "index_turnover_per_year": (0.04, 0.08),
    "median_earnings_yield": (0.02, 0.10),
    "median_book_to_market": (0.15, 1.0),
    "median_operating_margin": (0.05, 0.30),
    "median_announcement_lag_days": (20, 60),
}


def market_panel(market: simulated.SimulatedMarket) -> Panel:
    """The engine's panel of the simulated market, built in memory from its tables: total
    returns, membership and index weights then come from the engine's own code."""
    s = market.settings
    spec = PanelSpec("", None, simulated.SOURCE, s.index_name, s.end, (("default", 45),))
    return panel_from_tables("simulated", market.tables(), spec)


def stock_returns(market: simulated.SimulatedMarket) -> pd.DataFrame:
    """Days x tickers daily total returns (splits, dividends, delisting values): the panel's."""
    panel = market_panel(market)
    return pd.DataFrame(panel.total_return, index=panel.dates, columns=panel.labels)


def _drawdown_episodes(level: np.ndarray) -> list[float]:
    """The depth of each drawdown from a high to its recovery (or to the end)."""
    peak, depths, worst = level[0], [], 0.0
    for v in level[1:]:
        if v >= peak:
            if worst < 0:
                depths.append(worst)
            peak, worst = v, 0.0
        else:
            worst = min(worst, v / peak - 1.0)
    if worst < 0:
        depths.append(worst)
    return depths


def measure(market: simulated.SimulatedMarket) -> dict:
    """Every figure of the module docstring, plain numbers."""
    panel = market_panel(market)
    ret = pd.DataFrame(panel.total_return, index=panel.dates, columns=panel.labels)
    k = panel.list_of_day
    member = pd.DataFrame(
        np.where((k >= 0)[:, None], panel.membership[np.maximum(k, 0)], False),
        index=panel.dates,
        columns=panel.labels,
    )
    caps = comparison.index_caps(panel, np.arange(1, len(panel.dates)))
    total = caps.sum(axis=1, keepdims=True)
    weights = pd.DataFrame(
        np.divide(caps, total, out=np.zeros_like(caps), where=total > 0),
        index=panel.dates[1:],
        columns=panel.labels,
    )
    index_ret = comparison.index_returns(panel, 0, len(panel.dates) - 1).iloc[1:].fillna(0.0)
    level = np.cumprod(1 + index_ret.to_numpy())
    years = len(index_ret) / TRADING_DAYS

    sector = market.metadata.set_index("ticker")["sector"]  # the panel's labels are tickers
    by_sector = weights.T.groupby(sector.reindex(weights.columns).to_numpy()).sum().T
    top10 = np.sort(weights.to_numpy(), axis=1)[:, -10:].sum(axis=1)
    depths = _drawdown_episodes(level)
    abs_r = np.abs(index_ret.to_numpy() - index_ret.mean())
    acf = [np.corrcoef(abs_r[:-k], abs_r[k:])[0, 1] for k in range(1, 21)]
    annual = level[-1] ** (1 / years) - 1

    members_ever = [t for t in ret.columns if member[t].any()]
    member_ret = ret[members_ever].where(member[members_ever])
    vols = member_ret.std() * math.sqrt(TRADING_DAYS)
    sample = member_ret.iloc[:, :: max(1, len(members_ever) // 60)]
    corr = sample.corr(min_periods=120).to_numpy()
    pairs = corr[np.triu_indices_from(corr, 1)]
    valley = int(np.argmin(level / np.maximum.accumulate(level)))
    peak_day = int(np.argmax(level[: valley + 1]))
    crisis = sample.iloc[peak_day + 1 : valley + 2].corr(min_periods=20).to_numpy()
    crisis_pairs = crisis[np.triu_indices_from(crisis, 1)]

    divs = market.corporate_actions[market.corporate_actions["action"] == "dividend"]
    paid = divs.assign(year=divs["date"].dt.year).groupby(["ticker", "year"])["value"].sum()
    price = market.prices.assign(year=market.prices["date"].dt.year)
    year_end = price.groupby(["ticker", "year"])["close"].last()
    yields = (paid / year_end.reindex(paid.index)).dropna()
    splits = (market.corporate_actions["action"] == "split").sum()

    lists = panel.membership  # one row per list day, in order
    changes = int((lists[1:] & ~lists[:-1]).sum())  # members that entered at each new list
    size = market.settings.index_size
    events = market.events
    gone = events[events["event"].isin(["takeover", "bankruptcy"])]
    ever = set(panel.labels[lists.any(axis=0)])
    by_cause = gone[gone["ticker"].isin(ever)]["event"].value_counts().to_dict()

    f = market.fundamentals.copy()
    cap = pd.DataFrame(panel.fields["market_cap"], index=panel.dates, columns=panel.labels)
    mcap_at = cap.reindex(f["period_end"].values, method="ffill")
    f["mcap"] = [
        mcap_at.iloc[k].get(t, np.nan) for k, t in enumerate(f["ticker"])
    ]  # the cap on the period end
    fig = {
        "largest_member_max_weight": float(weights.max(axis=1).max()),
        "top10_max_weight": float(top10.max()),
        "largest_sector_max_weight": float(by_sector.max(axis=1).max()),
        "index_annual_volatility": float(index_ret.std() * math.sqrt(TRADING_DAYS)),
        "index_max_drawdown": float(min(depths) if depths else 0.0),
        "deep_drawdowns_35_55": int(sum(-0.55 <= d <= -0.35 for d in depths)),
        "corrections_10_20": int(sum(-0.20 <= d <= -0.10 for d in depths)),
        "index_daily_excess_kurtosis": float(pd.Series(index_ret).kurt()),
        "abs_return_autocorrelation": float(np.nanmean(acf)),
        "index_annual_return": float(annual),
        "equity_premium": float(annual - RISK_FREE),
        "median_stock_volatility": float(vols.median()),
        "mean_pairwise_correlation": float(np.nanmean(pairs)),
        "crisis_pairwise_correlation": float(np.nanmean(crisis_pairs)),
        "median_payer_dividend_yield": float(yields.median()) if len(yields) else float("nan"),
        "splits_per_year": float(splits / years),
        "index_turnover_per_year": float(changes / years / size),
        "members_leaving_by_cause": {k: int(v) for k, v in by_cause.items()},
        "median_earnings_yield": float((4 * f["net_income"] / f["mcap"]).median()),
        "median_book_to_market": float((f["total_equity"] / f["mcap"]).median()),
        "median_operating_margin": float((f["ebit"] / f["revenue"]).median()),
        "median_announcement_lag_days": float(
            (f["announcement_date"] - f["period_end"]).dt.days.median()
        ),
    }
    return fig


def check(figures: dict) -> dict[str, bool]:
    """Which figures fall in their target range."""
    return {
        name: bool(lo <= figures[name] <= hi)
        for name, (lo, hi) in TARGETS.items()
        if isinstance(figures.get(name), int | float) and math.isfinite(figures[name])
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m equity_backtest.evaluation.realism",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tickers", type=int, default=300)
    ap.add_argument("--index-size", type=int, default=100)
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2005, 1, 1))
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2024, 12, 31))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument(
        "--seeds", type=int, nargs="+", help="check several seeds: one line each, then a count"
    )
    args = ap.parse_args(argv)
    if args.seeds:
        return _many(args)
    settings = simulated.SimulationSettings(
        args.tickers, args.index_size, args.start, args.end, args.seed
    )
    figures = measure(simulated.simulate(settings))
    passed = check(figures)
    if args.json:
        print(json.dumps({"figures": figures, "in_target": passed}, indent=1))
        return 0
    print(f"simulated market {settings}")
    for name, value in figures.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if passed.get(name) else "OUT")
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        span = f"target {target[0]:g} to {target[1]:g}" if target else ""
        print(f"{name:<32} {shown:>12}  {span:<24} {verdict}")
    print(f"{sum(passed.values())} of {len(passed)} figures in their target range")
    return 0


def _many(args) -> int:
    """One line per seed: how many figures are in range and which are not."""
    passing = 0
    for seed in args.seeds:
        settings = simulated.SimulationSettings(
            args.tickers, args.index_size, args.start, args.end, seed
        )
        figures = measure(simulated.simulate(settings))
        passed = check(figures)
        out = [f"{k} {figures[k]:.4g}" for k, ok in passed.items() if not ok]
        passing += not out
        print(f"seed {seed}: {sum(passed.values())} of {len(passed)} in range"
              + (f"; out: {', '.join(out)}" if out else ""))  # fmt: skip
    print(f"{passing} of {len(args.seeds)} seeds have every figure in range")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
