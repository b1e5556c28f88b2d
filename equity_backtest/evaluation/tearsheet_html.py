"""The tear sheet's page (V5): tearsheet.html rendered from the metrics dictionary.

Every number goes through one formatting function (`fmt`) and carries a `data-key` with its path
in metrics.json, so a test checks that every number on the page is the number in the file. The
page shell (stylesheet, embedded images) is shared with the other reports (`page`).
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from . import page, plots
from .returns import RunData, benchmark_label

PERCENT = {
    "cumulative_return", "annual_return", "annual_volatility", "max_drawdown", "alpha", "tracking_error",
    "mean_daily_turnover", "annual_turnover", "costs_pct_of_traded_value", "costs_pct_of_starting_value",
    "costs_pct_of_gross_profit", "risk_free_rate", "daily_value_at_risk", "daily_conditional_value_at_risk",
    "gross_leverage", "net_exposure", "depth", "portfolio", "index", "win_rate", "month",
    "days_outside_soft", "days_outside_hard", "mean_weight", "last_weight",
    "probabilistic_sharpe_ratio", "trailing_1y", "trailing_3y", "trailing_5y", "trailing_10y",
    "best_bar", "worst_bar", "best_month", "worst_month",
}  # fmt: skip
DAYS = {"average_holding_days"}
MONEY = {
    "total_commission", "total_slippage", "total_costs", "traded_value", "dividends_received",
    "starting_value", "final_value", "average_win", "average_loss", "median_trade", "expectancy",
    "expectancy_without_top_5pct_winners", "interest", "short_fees",
}  # fmt: skip
LABELS = {
    "cumulative_return": "Cumulative return", "annual_return": "Annual return (CAGR)",
    "annual_volatility": "Annual volatility", "sharpe_ratio": "Sharpe ratio (in excess of the risk-free rate)",
    "sharpe_ratio_rf0": "Sharpe ratio, rf = 0 (pyfolio's and quantstats' default)",
    "probabilistic_sharpe_ratio": "Probabilistic Sharpe ratio (P[true Sharpe > 0])",
    "trailing_1y": "Last year", "trailing_3y": "Last 3 years (a year)", "trailing_5y": "Last 5 years (a year)",
    "trailing_10y": "Last 10 years (a year)", "best_bar": "Best day", "worst_bar": "Worst day",
    "best_month": "Best month", "worst_month": "Worst month",
    "sortino_ratio": "Sortino ratio (in excess of the risk-free rate)",
    "max_drawdown": "Max drawdown", "calmar_ratio": "Calmar ratio", "omega_ratio": "Omega ratio",
    "stability": "Stability (R² of log wealth)", "skew": "Skew", "kurtosis": "Excess kurtosis",
    "tail_ratio": "Tail ratio", "daily_value_at_risk": "Daily VaR 95% (historical)",
    "daily_conditional_value_at_risk": "Daily CVaR 95% (historical)", "alpha": "Alpha (annual)",
    "beta": "Beta", "tracking_error": "Tracking error", "information_ratio": "Information ratio",
    "correlation": "Correlation of daily returns", "gross_leverage": "Mean gross leverage",
    "net_exposure": "Mean net exposure", "mean_daily_turnover": "Mean daily turnover",
    "annual_turnover": "Annual turnover", "total_commission": "Commission", "total_slippage": "Spread, slippage, impact",
    "total_costs": "Total costs", "costs_pct_of_traded_value": "Costs / traded value",
    "costs_pct_of_starting_value": "Costs / starting value", "costs_pct_of_gross_profit": "Costs / gross profit",
    "number_of_trades": "Number of trades", "traded_value": "Traded value", "dividends_received": "Dividends received",
    "interest": "Interest (net)", "short_fees": "Short fees", "round_trips": "Round trips closed",
    "holding_periods": "Holding periods (closed and open)",
    "open_positions_at_end": "Positions open at the end", "win_rate": "Win rate", "average_win": "Average win",
    "average_loss": "Average loss", "profit_factor": "Profit factor", "median_trade": "Median round trip",
    "expectancy": "Mean P&L per holding period ¹",
    "expectancy_without_top_5pct_winners": "Mean P&L per holding period without the top 5% of winners ¹",
    "average_holding_days": "Average holding period",
}  # fmt: skip


def fmt(key: str, value) -> str:
    """The one formatting used on the page, chosen by the metric's (last) key."""
    key = key.split(".")[-1]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if key == "year":
        return str(value)
    if key in PERCENT or key.isdigit():
        return f"{value * 100:.2f}%"
    if key in MONEY:
        return f"{value:,.2f}"
    if key in DAYS:
        return f"{value:,.0f} days"
    if isinstance(value, int | np.integer):
        return f"{value:,d}"
    return f"{value:.3f}"


def _cell(path: str, value) -> str:
    return f'<td data-key="{html.escape(path)}">{html.escape(fmt(path, value))}</td>'


def _kv_table(
    section: str, values: dict, header: str, compare: dict | None = None, against: str = ""
) -> str:
    head = (
        f"<tr><th>{html.escape(header)}</th><th>Portfolio</th>"
        + (f"<th>{html.escape(against)}</th>" if compare else "")
        + "</tr>"
    )
    rows = []
    for k, v in values.items():
        cells = _cell(f"{section}.{k}", v)
        if compare is not None:
            cells += _cell(f"benchmark.{k}", compare[k]) if k in compare else "<td></td>"
        rows.append(f"<tr><td>{html.escape(LABELS.get(k, k))}</td>{cells}</tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _list_table(section: str, records: list[dict], title: str) -> str:
    if not records:
        return f"<h3>{html.escape(title)}</h3><p class='meta'>None in this run.</p>"
    cols = list(records[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(_cell(f"{section}.{i}.{c}", rec[c]) for c in cols) + "</tr>"
        for i, rec in enumerate(records)
    )
    return f"<h3>{html.escape(title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _monthly_table(monthly: dict[str, list]) -> str:
    head = "<th>year</th>" + "".join(f"<th>{mo}</th>" for mo in range(1, 13))
    body = "".join(
        "<tr><td>"
        + y
        + "</td>"
        + "".join(_cell(f"monthly_returns.{y}.{i}", v) for i, v in enumerate(vals))
        + "</tr>"
        for y, vals in monthly.items()
    )
    return f"<h3>Monthly returns</h3><table class='small'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _settings_table(settings: dict) -> str:
    """The settings behind the numbers, in words."""
    if not settings:
        return ""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td data-key='settings.{html.escape(k)}'>{html.escape(v)}</td></tr>"
        for k, v in settings.items()
    )
    return f"<h2>Settings</h2><table class='small settings'>{rows}</table>"


def _contest_html(contest: dict) -> str:
    """The contest section when it was checked, else one line saying how to ask for it."""
    if not contest.get("checked", True):
        return f"<h2>Contest checks</h2><p class='meta'>{html.escape(contest['note'])}</p>"
    return f"""<h2>Contest checks (rules for market-neutral strategies)</h2>
<p>Score <span data-key="contest.score">{fmt("score", contest["score"])}</span>;
all constraints pass: <span data-key="contest.all_pass">{fmt("all_pass", contest["all_pass"])}</span>.
{html.escape(contest["note"])}</p>
{_list_table("contest.checks", contest["checks"], "Constraints, measured from the sixth day (soft limit may be broken on 2% of days, hard never)")}"""


def render_html(metrics: dict, figures: dict[str, bytes]) -> str:
    def img(name: str) -> str:
        return page.image(name, figures[name])

    per = metrics["period"]
    findings_html = "".join(f"<li>{html.escape(f)}</li>" for f in metrics["findings"])
    warnings_html = "".join(f"<li>{html.escape(w)}</li>" for w in metrics["warnings"])
    return page.page(
        f"Tear sheet {metrics['run']}",
        f"""<h1>Tear sheet</h1>
<p class="meta">Run <code>{html.escape(metrics["run"])}</code> ({html.escape(str(metrics["status"]))}),
{per["start"]} to {per["end"]} ({per["days"]:,d} {metrics.get("bar_frequency", "daily")} bars).
Starting value <span data-key="starting_value">{fmt("starting_value", metrics["starting_value"])}</span>,
final value <span data-key="final_value">{fmt("final_value", metrics["final_value"])}</span>,
risk-free rate <span data-key="risk_free_rate">{fmt("risk_free_rate", metrics["risk_free_rate"])}</span>.</p>
{_settings_table(metrics.get("settings", {}))}
<h2>Findings</h2><ul>{findings_html}</ul>
{"<h2>Warnings</h2><ul>" + warnings_html + "</ul>" if warnings_html else ""}
<h2>Performance</h2>
{img("equity curve and drawdown")}{img("log wealth")}
{_kv_table("portfolio", metrics["portfolio"], "Returns and risk", metrics["benchmark"], metrics.get("benchmark_label", "Index"))}
{_kv_table("relative", metrics["relative"], "Against the benchmark (" + metrics.get("benchmark_label", "index") + ")")}
{img("active return")}{img("return distribution")}
<h2>Calendar</h2>
{img("yearly returns")}{img("monthly returns")}
{_list_table("yearly_returns", metrics["yearly_returns"], "Yearly returns")}
{_monthly_table(metrics["monthly_returns"])}
<h2>Drawdowns and stress events</h2>
{_list_table("drawdowns", metrics["drawdowns"], "Worst drawdowns")}
{_list_table("stress_events", metrics["stress_events"], "Stress events inside the run") if metrics["stress_events"] or " on simulated/" not in metrics["run"] else "<h3>Stress events inside the run</h3><p class='meta'>Real-world events are named on real data only: the simulated market's days are not theirs. No episode the simulated market recorded (bear market, crash, recovery, correction, high volatility) lies wholly inside this run; its worst spells are in the drawdown table.</p>"}
<h2>Rolling statistics</h2>
{img("rolling")}
{_contest_html(metrics["contest"])}
<h2>Holdings and trading</h2>
{_list_table("top_holdings", metrics["top_holdings"], "Top holdings by mean weight")}
{img("concentration")}
{img("exposure and turnover")}{img("sector weights")}
{_kv_table("trading", metrics["trading"], "Costs and turnover")}
{_kv_table("round_trips", metrics["round_trips"], "Round trips")}
<p class="meta">¹ A holding period runs from a position's opening to its closing (a position still
open is valued at the last close); buys and sells in between belong to it. pyfolio's "round
trips" pair each sale with the buys it closes, so its mean P&L per round trip is a smaller,
different number; both come from the same fills.</p>
<p class="meta">{html.escape(metrics["conventions"])}. Generated by equity_backtest {metrics["equity_backtest"]}.</p>""",
    )


def figures_for(run: RunData, tables: dict[str, pd.DataFrame]) -> dict[str, bytes]:
    label = benchmark_label(run)
    turnover = ((run.runtime["bought"] + run.runtime["sold"]) / 2 / run.runtime["value"]).to_numpy()
    return {
        "equity curve and drawdown": plots.equity_and_drawdown(run.returns, run.benchmark, label),
        "log wealth": plots.log_wealth(run.returns, run.benchmark, label),
        "yearly returns": plots.yearly_bars(tables["yearly_returns"], label),
        "monthly returns": plots.monthly_heatmap(tables["monthly_returns"]),
        "rolling": plots.rolling(tables["rolling"]),
        "active return": plots.active_return(run.returns, run.benchmark),
        "return distribution": plots.return_histogram(run.returns, run.bar_frequency),
        "exposure and turnover": plots.exposure_and_turnover(
            tables["exposures"], pd.Series(turnover, index=run.returns.index)
        ),
        "sector weights": plots.sector_weights(tables["sector_weights"]),
        "concentration": plots.concentration(run.positions, tables["top_holdings"]),
    }
