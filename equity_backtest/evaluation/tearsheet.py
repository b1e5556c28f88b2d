"""metrics.json, CSV tables and a self-contained tearsheet.html (V5) for one run.

The page is rendered from the same dictionary that is written to metrics.json, through one
formatting function; each number on the page carries a `data-key` with its path in metrics.json,
so a test can check that every number on the page is the number in the file.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import BacktestError
from ..storage import atomic_write_bytes, atomic_write_csv, atomic_write_text
from . import contest, plots
from . import metrics as m
from .exports import write_pyfolio
from .findings import findings
from .returns import RunData, load_run, load_run_panel
from .tables import drawdown_periods, monthly_returns, rolling_stats, stress_events, yearly_returns
from .trading import (
    by_day,
    exposures,
    round_trip_stats,
    round_trips,
    sector_weights,
    top_holdings,
)

log = logging.getLogger(__name__)

PERCENT = {
    "cumulative_return", "annual_return", "annual_volatility", "max_drawdown", "alpha", "tracking_error",
    "mean_daily_turnover", "annual_turnover", "costs_pct_of_traded_value", "costs_pct_of_starting_value",
    "costs_pct_of_gross_profit", "risk_free_rate", "daily_value_at_risk", "daily_conditional_value_at_risk",
    "gross_leverage", "net_exposure", "depth", "portfolio", "index", "win_rate", "month",
    "days_outside_soft", "days_outside_hard", "mean_weight", "last_weight",
}  # fmt: skip
MONEY = {
    "total_commission", "total_slippage", "total_costs", "traded_value", "dividends_received",
    "starting_value", "final_value", "average_win", "average_loss", "median_trade", "expectancy",
    "expectancy_without_top_5pct_winners", "interest", "short_fees",
}  # fmt: skip
LABELS = {
    "cumulative_return": "Cumulative return", "annual_return": "Annual return (CAGR)",
    "annual_volatility": "Annual volatility", "sharpe_ratio": "Sharpe ratio", "sortino_ratio": "Sortino ratio",
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
    "expectancy": "Expectancy (mean holding period, open ones at the last close)",
    "expectancy_without_top_5pct_winners": "Expectancy without the top 5% of winners",
    "average_holding_days": "Average holding period (days)",
}  # fmt: skip


def compute(run: RunData) -> tuple[dict, dict[str, pd.DataFrame]]:
    """All metrics and tables of a run: (JSON-ready dict, tables for CSV and plots)."""
    r, b = run.returns.to_numpy(), run.benchmark.to_numpy()
    start_value = float(run.run_info.get("starting_value", run.parameters["starting_cash"]))
    final_value = float(run.runtime["value"].iloc[-1])
    dates = pd.DatetimeIndex(run.runtime["date"])
    expo = exposures(run.positions, run.runtime)
    trips = round_trips(run.positions, run.cash_ledger, dates)
    P = run.periods
    trading = m.trading_metrics(run.runtime, run.trades, start_value, P)
    gross_profit = final_value - start_value + trading["total_costs"]
    trading["costs_pct_of_gross_profit"] = (
        trading["total_costs"] / gross_profit if gross_profit > 0 else float("nan")
    )
    for col in ("interest", "short_fees"):
        trading[col] = float(run.runtime[col].sum()) if col in run.runtime else 0.0
    portfolio = m.return_metrics(r, run.rf_daily, P)
    portfolio["gross_leverage"] = float(expo["gross"].mean())
    portfolio["net_exposure"] = float(expo["net"].mean())
    monthly = monthly_returns(run.returns)
    yearly = yearly_returns(run.returns, run.benchmark)
    dd = drawdown_periods(run.returns)
    stress = stress_events(run.returns, run.benchmark)
    tables = {
        "drawdowns": dd, "stress_events": stress, "monthly_returns": monthly, "yearly_returns": yearly,
        "rolling": rolling_stats(run.returns, run.benchmark, run.rf_daily, P), "round_trips": trips,
        "exposures": expo, "sector_weights": sector_weights(run.positions, run.metadata),
        "top_holdings": top_holdings(run.positions, run.metadata, len(r)),
    }  # fmt: skip
    metrics = {
        # what ran, not the folder's name: two runs with the same inputs evaluate identically
        "run": f"{run.run_info.get('algorithm', '?')} on "
        f"{run.parameters.get('source', '?')}/{run.parameters.get('index', '?')}",
        "status": run.run_info.get("status"),
        "period": {"start": f"{dates[0]:%Y-%m-%d}", "end": f"{dates[-1]:%Y-%m-%d}", "days": len(r)},
        "risk_free_rate": float(run.parameters["risk_free_rate"]),
        "starting_value": start_value,
        "final_value": final_value,
        "portfolio": portfolio,
        "bar_frequency": run.bar_frequency,
        "periods_per_year": P,
        "benchmark_name": run.run_info.get("benchmark", "index"),
        "benchmark_available": run.has_benchmark,
        # never compared against a benchmark with gaps: its figures are left empty
        "benchmark": m.return_metrics(
            b if run.has_benchmark else np.full_like(b, np.nan), run.rf_daily, P
        ),
        "relative": m.relative_metrics(
            r, b if run.has_benchmark else np.full_like(b, np.nan), run.rf_daily, P
        ),
        "trading": trading,
        "round_trips": round_trip_stats(trips),
        "drawdowns": _records(dd),
        "top_holdings": _records(tables["top_holdings"]),
        "stress_events": _records(stress),
        "yearly_returns": _records(yearly.reset_index()),
        "monthly_returns": {
            str(y): [None if not np.isfinite(v) else float(v) for v in row]
            for y, row in zip(monthly.index, monthly.to_numpy(dtype=float), strict=True)
        },
        "warnings": run.run_info.get("warnings", []),
        "conventions": f"{P} bars/year ({run.bar_frequency} bars); sample std (ddof=1); CAGR compounding; drawdown from a peak "
        "starting at the initial value; excess returns over the daily-compounded "
        "risk-free rate; VaR/CVaR historical at 95% (empyrical's definitions); daily "
        "turnover one-way: (bought + sold) / 2 / value",
        "equity_backtest": __version__,
    }
    contest_table, contest_summary = _contest(run, tables["exposures"])
    metrics["contest"] = {**contest_summary, "checks": _records(contest_table)}
    tables["contest"] = contest_table
    metrics["findings"] = findings(metrics)
    llm = _llm_decisions(run)
    if llm is not None:
        metrics["llm"], tables["llm_decisions"] = llm
        metrics["findings"] += metrics["llm"]["findings"]
    return metrics, tables


def _llm_decisions(run: RunData) -> tuple[dict, pd.DataFrame] | None:
    """For a run of strategies/llm.py: its decisions from the decision log, evaluated (L6)."""
    params = run.parameters
    if not params.get("llm_model") or Path(str(params.get("algorithm", ""))).stem != "llm":
        return None
    from ..llm import decision_log
    from ..llm import evaluate as llm_evaluate

    frame = decision_log.read_frame(params.get("llm_decisions_dir", "decisions"))
    if frame.empty:
        log.warning("no LLM decision log at %s", params.get("llm_decisions_dir"))
        return None
    days = run.returns.index
    dates = pd.to_datetime(frame["as_of"])
    frame = frame[(dates >= days[0]) & (dates <= days[-1])]
    frame = frame[frame["model_id"].astype(str) == str(params["llm_model"])]
    try:
        panel = load_run_panel(run)
    except BacktestError as exc:
        log.warning("LLM decisions not evaluated: %s", exc)
        return None
    metrics, table = llm_evaluate.evaluate(panel, frame.reset_index(drop=True))
    keep = [
        "as_of",
        "ticker",
        "model_id",
        "quantisation",
        "prompt_version",
        "window",
        "status",
        "decision",
        "confidence",
        "fwd_return",
        "excess",
        "reason",
    ]
    return metrics, table[[c for c in keep if c in table]]


def _contest(run: RunData, exposure: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The Quantopian contest's rules for market-neutral strategies, only when asked for
    (contest_checks = True, or 04 --contest): a long-only index tracker is not meant to pass
    them. Styles and liquidity come from the run's contest_inputs.feather (03 writes it when
    contest_checks is on); without it those two rows say NOT MEASURED. The rules are written in
    trading days: on weekly or monthly bars they are skipped, and the summary says so."""
    empty = pd.DataFrame(columns=["constraint", "result"])
    if not run.parameters.get("contest_checks", False):
        return empty, {
            "checked": False,
            "score": None,
            "all_pass": None,
            "days": int(len(run.returns)),
            "note": "Not checked: the contest's rules are for market-neutral strategies; set "
            "contest_checks = True (or run 04 --contest) to check them.",
        }
    if run.bar_frequency != "daily":
        return empty, {
            "checked": False,
            "score": None,
            "all_pass": None,
            "days": int(len(run.returns)),
            "note": f"Skipped: the contest checks and score are defined on daily bars; this run "
            f"has {run.bar_frequency} bars.",
        }
    turnover = ((run.runtime["bought"] + run.runtime["sold"]) / 2 / run.runtime["value"]).set_axis(
        run.returns.index
    )
    sectors = run.metadata.set_index("ticker")["sector"]
    held = run.run_dir / "contest_inputs.feather"
    if held.is_file():
        inputs = contest.inputs_from_archive(
            pd.read_feather(held), run.returns, run.benchmark, run.positions, turnover, sectors
        )
    else:
        log.warning(
            "contest style and liquidity checks not measured: the run has no "
            "contest_inputs.feather (run 03 with contest_checks = True)"
        )
        weights = by_day(run.positions, "weight", run.returns.index)
        inputs = contest.ContestInputs(run.returns, run.benchmark, weights, turnover, sectors)
    table, summary = contest.check(inputs)
    return table, {"checked": True, **summary}


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for rec in frame.to_dict("records"):
        out.append(
            {
                k: (f"{v:%Y-%m-%d}" if isinstance(v, pd.Timestamp) else None if v is pd.NaT else v)
                for k, v in rec.items()
            }
        )
    return out


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
    if isinstance(value, int | np.integer):
        return f"{value:,d}"
    return f"{value:.3f}"


def _cell(path: str, value) -> str:
    return f'<td data-key="{html.escape(path)}">{html.escape(fmt(path, value))}</td>'


def _kv_table(section: str, values: dict, header: str, compare: dict | None = None) -> str:
    head = (
        f"<tr><th>{html.escape(header)}</th><th>Portfolio</th>"
        + ("<th>Index</th>" if compare else "")
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
        return (
            f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(figures[name]).decode()}"></figure>'
        )

    per = metrics["period"]
    findings_html = "".join(f"<li>{html.escape(f)}</li>" for f in metrics["findings"])
    warnings_html = "".join(f"<li>{html.escape(w)}</li>" for w in metrics["warnings"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tear sheet {html.escape(metrics["run"])}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1050px;color:#222}}
table{{border-collapse:collapse;margin:.5em 2em 1em 0;display:inline-table;vertical-align:top}}
td,th{{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:right}} td:first-child,th:first-child{{text-align:left}}
table.small td,table.small th{{padding:.15em .35em;font-size:.85em}}
img{{max-width:100%}} .meta{{color:#555}} h2{{margin-top:1.6em;border-bottom:2px solid #eee}}
</style></head><body>
<h1>Tear sheet</h1>
<p class="meta">Run <code>{html.escape(metrics["run"])}</code> ({html.escape(str(metrics["status"]))}),
{per["start"]} to {per["end"]} ({per["days"]:,d} {metrics.get("bar_frequency", "daily")} bars).
Starting value <span data-key="starting_value">{fmt("starting_value", metrics["starting_value"])}</span>,
final value <span data-key="final_value">{fmt("final_value", metrics["final_value"])}</span>,
risk-free rate <span data-key="risk_free_rate">{fmt("risk_free_rate", metrics["risk_free_rate"])}</span>.</p>
<h2>Findings</h2><ul>{findings_html}</ul>
{"<h2>Warnings</h2><ul>" + warnings_html + "</ul>" if warnings_html else ""}
<h2>Performance</h2>
{img("equity curve and drawdown")}{img("log wealth")}
{_kv_table("portfolio", metrics["portfolio"], "Returns and risk", metrics["benchmark"])}
{_kv_table("relative", metrics["relative"], "Against the benchmark (" + html.escape(metrics.get("benchmark_name", "index")) + ")")}
{img("active return")}{img("return distribution")}
<h2>Calendar</h2>
{img("yearly returns")}{img("monthly returns")}
{_list_table("yearly_returns", metrics["yearly_returns"], "Yearly returns")}
{_monthly_table(metrics["monthly_returns"])}
<h2>Drawdowns and stress events</h2>
{_list_table("drawdowns", metrics["drawdowns"], "Worst drawdowns")}
{_list_table("stress_events", metrics["stress_events"], "Stress events inside the run")}
<h2>Rolling statistics</h2>
{img("rolling")}
{_contest_html(metrics["contest"])}
<h2>Holdings and trading</h2>
{_list_table("top_holdings", metrics["top_holdings"], "Top holdings by mean weight")}
{img("exposure and turnover")}{img("sector weights")}
{_kv_table("trading", metrics["trading"], "Costs and turnover")}
{_kv_table("round_trips", metrics["round_trips"], "Round trips")}
<p class="meta">{html.escape(metrics["conventions"])}. Generated by equity_backtest {metrics["equity_backtest"]}.</p>
</body></html>
"""


def figures_for(run: RunData, tables: dict[str, pd.DataFrame]) -> dict[str, bytes]:
    turnover = ((run.runtime["bought"] + run.runtime["sold"]) / 2 / run.runtime["value"]).to_numpy()
    return {
        "equity curve and drawdown": plots.equity_and_drawdown(run.returns, run.benchmark),
        "log wealth": plots.log_wealth(run.returns, run.benchmark),
        "yearly returns": plots.yearly_bars(tables["yearly_returns"]),
        "monthly returns": plots.monthly_heatmap(tables["monthly_returns"]),
        "rolling": plots.rolling(tables["rolling"]),
        "active return": plots.active_return(run.returns, run.benchmark),
        "return distribution": plots.return_histogram(run.returns, run.bar_frequency),
        "exposure and turnover": plots.exposure_and_turnover(
            tables["exposures"], pd.Series(turnover, index=run.returns.index)
        ),
        "sector weights": plots.sector_weights(tables["sector_weights"]),
    }


def evaluate(run_dir: str | Path, **overrides) -> dict:
    """Write metrics.json, the CSV tables, pyfolio exports and tearsheet.html into the run folder.
    `overrides`: evaluation settings to use instead of the run's (EVALUATION_SETTINGS)."""
    out = Path(run_dir)
    # metrics.json marks a run as evaluated: it goes first and comes back last, so a killed 04
    # never leaves a half-evaluated run that looks evaluated
    (out / "metrics.json").unlink(missing_ok=True)
    run = load_run(run_dir, **overrides)
    metrics, tables = compute(run)
    frame = run.returns.to_frame().join(run.benchmark)
    tables = {"returns": frame, **tables}
    for name, table in tables.items():
        keep_index = name not in (
            "drawdowns",
            "stress_events",
            "round_trips",
            "contest",
            "llm_decisions",
        )
        atomic_write_csv(out / f"{name}.csv", table, index=keep_index)
    write_pyfolio(run, out)
    atomic_write_bytes(
        out / "tearsheet.html", render_html(metrics, figures_for(run, tables)).encode("utf-8")
    )
    atomic_write_text(
        out / "metrics.json", json.dumps(_jsonable(metrics), indent=1, sort_keys=True) + "\n"
    )
    return metrics


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
