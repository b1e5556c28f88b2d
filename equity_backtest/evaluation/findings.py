"""Findings (V8): a few plain sentences derived from a run's own numbers.

Every sentence is computed from metrics.json values, so it changes when the data changes: a
strategy that trails the index is said to trail it, costs that ate the gross profit are said to.
"""

from __future__ import annotations

import math


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _digits(a: float, b: float) -> int:
    """Decimals (of a percentage) enough to show two different numbers as different."""
    for d in (1, 2, 3):
        if round(a * 100, d) != round(b * 100, d):
            return d
    return 3


def _against_benchmark(p: dict, b: dict, what: str) -> list[str]:
    out = []
    gap = p["annual_return"] - b["annual_return"]
    d = _digits(p["annual_return"], b["annual_return"])
    verb = "matches" if abs(gap) < 0.00005 else "beats" if gap > 0 else "trails"
    by = "" if verb == "matches" else f" by {abs(gap) * 100:.{d}f} points a year"
    out.append(
        f"The portfolio {verb} {what}{by} "
        f"({p['annual_return'] * 100:.{d}f}% against {b['annual_return'] * 100:.{d}f}%), with a "
        f"maximum drawdown of {_pct(p['max_drawdown'])} against {_pct(b['max_drawdown'])}."
    )
    if math.isfinite(p["sharpe_ratio"]) and math.isfinite(b["sharpe_ratio"]):
        diff = p["sharpe_ratio"] - b["sharpe_ratio"]
        how = (
            "about as well as" if abs(diff) < 0.005 else "better than" if diff > 0 else "worse than"
        )
        out.append(
            f"Risk-adjusted it does {how} {what}: Sharpe ratio {p['sharpe_ratio']:.2f} "
            f"against {b['sharpe_ratio']:.2f}."
        )
    return out


def findings(metrics: dict) -> list[str]:
    p, b, t = metrics["portfolio"], metrics["benchmark"], metrics["trading"]
    out = []
    name = metrics.get("benchmark_name", "index")
    label = metrics.get("benchmark_label", "index")
    what = f"the {label}" if name == "index" else f"the benchmark ({name})"
    if not metrics.get("benchmark_available", True):
        out.append(
            f"There is no comparison with {what}: it could not be computed on every bar of the "
            f"run (see the warnings). The portfolio returned {_pct(p['annual_return'])} a year "
            f"with a maximum drawdown of {_pct(p['max_drawdown'])}."
        )
    else:
        out += _against_benchmark(p, b, what)
    share = t.get("costs_pct_of_gross_profit", float("nan"))
    if t["total_costs"] > 0:
        if math.isfinite(share):
            out.append(
                f"Costs took {_pct(share)} of the gross profit ({t['total_costs']:,.0f} in "
                f"commission and price costs, {_pct(t['costs_pct_of_traded_value'])} of the value traded)."
            )
        else:
            out.append(
                f"There was no gross profit for costs to take from; costs of {t['total_costs']:,.0f} "
                "deepened the loss."
            )
    worst = metrics["drawdowns"][0] if metrics["drawdowns"] else None
    if worst:
        if worst["recovered"]:
            tail = f"and recovered by {worst['recovery']}"
        else:
            tail = "and has not recovered by the end of the run"
        out.append(
            f"The worst drawdown, {_pct(worst['depth'])}, began after the peak of "
            f"{worst['peak'] or 'the start'}, bottomed on {worst['valley']} {tail} "
            f"({worst['duration_days']:,d} days)."
        )
    rt = metrics["round_trips"]
    periods = rt.get("holding_periods", rt["round_trips"])
    if periods >= 10 and math.isfinite(rt["expectancy"]):
        trimmed = rt["expectancy_without_top_5pct_winners"]
        counted = (
            f" (counting the {rt['open_positions_at_end']} positions still open at their last "
            "close)"
            if rt.get("open_positions_at_end")
            else ""
        )
        if rt["expectancy"] > 0 and trimmed <= 0:
            out.append(
                f"The edge rests on a few outliers: the average position earns "
                f"{rt['expectancy']:,.0f}{counted}, but without the top 5% of winners it earns "
                f"{trimmed:,.0f}."
            )
        elif rt["expectancy"] > 0:
            out.append(
                f"The edge is broad: the average position earns {rt['expectancy']:,.0f}"
                f"{counted}, and still {trimmed:,.0f} without the top 5% of winners."
            )
        else:
            out.append(
                f"The average position loses money ({rt['expectancy']:,.0f}{counted}; win rate "
                f"{_pct(rt['win_rate'])})."
            )
    out.append(
        "Overfitting risk is not measured by one run: evaluate the set of trials it came from "
        "(04_evaluate.py over a trials folder) for the probability of backtest overfitting."
    )
    vintage = metrics.get("settings", {}).get("fundamentals", "")
    if vintage.startswith("as restated") and "restated_lag_days" in vintage:
        out.append(
            "The fundamentals are restated figures, each seen here some days after its first "
            "report (restated_lag_days): corrections made within that lag were not yet known in "
            "real time, later ones still were, so the result may still be somewhat optimistic."
        )
    elif vintage.startswith("as restated"):
        out.append(
            "The fundamentals are restated figures dated at their first report: a rule that reads "
            "them saw later corrections before they were made, so its result is an upper bound "
            "of what could have been done in real time (restated_lag_days delays them)."
        )
    return out
