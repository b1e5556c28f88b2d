"""metrics.json and a self-contained tearsheet.html (V5) for one run.

The page is rendered from the same dictionary that is written to metrics.json, through one
formatting function, so every number on the page is the number in the file.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from .. import __version__
from ..storage import atomic_write_bytes, atomic_write_text
from . import metrics as m
from .plots import equity_and_drawdown
from .returns import RunData, load_run

PERCENT = {
    "cumulative_return",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "alpha",
    "tracking_error",
    "mean_daily_turnover",
    "annual_turnover",
    "costs_pct_of_traded_value",
    "costs_pct_of_starting_value",
    "risk_free_rate",
}
MONEY = {
    "total_commission",
    "total_slippage",
    "total_costs",
    "traded_value",
    "dividends_received",
    "starting_value",
    "final_value",
}
LABELS = {
    "cumulative_return": "Cumulative return",
    "annual_return": "Annual return (CAGR)",
    "annual_volatility": "Annual volatility",
    "sharpe_ratio": "Sharpe ratio",
    "sortino_ratio": "Sortino ratio",
    "max_drawdown": "Max drawdown",
    "calmar_ratio": "Calmar ratio",
    "alpha": "Alpha (annual)",
    "beta": "Beta",
    "tracking_error": "Tracking error",
    "information_ratio": "Information ratio",
    "correlation": "Correlation of daily returns",
    "mean_daily_turnover": "Mean daily turnover",
    "annual_turnover": "Annual turnover",
    "total_commission": "Commission",
    "total_slippage": "Slippage",
    "total_costs": "Total costs",
    "costs_pct_of_traded_value": "Costs / traded value",
    "costs_pct_of_starting_value": "Costs / starting value",
    "number_of_trades": "Number of trades",
    "traded_value": "Traded value",
    "dividends_received": "Dividends received",
}


def compute_metrics(run: RunData) -> dict:
    """All metrics of a run as a JSON-ready dict."""
    r, b = run.returns.to_numpy(), run.benchmark.to_numpy()
    start_value = float(run.run_info.get("starting_value", run.parameters["starting_cash"]))
    return {
        "run": run.run_dir.name,
        "status": run.run_info.get("status"),
        "period": {
            "start": f"{run.returns.index[0]:%Y-%m-%d}",
            "end": f"{run.returns.index[-1]:%Y-%m-%d}",
            "days": len(r),
        },
        "risk_free_rate": float(run.parameters["risk_free_rate"]),
        "starting_value": start_value,
        "final_value": float(run.runtime["value"].iloc[-1]),
        "portfolio": m.return_metrics(r, run.rf_daily),
        "benchmark": m.return_metrics(b, run.rf_daily),
        "relative": m.relative_metrics(r, b, run.rf_daily),
        "trading": m.trading_metrics(run.runtime, run.trades, start_value),
        "conventions": "252 days/year; sample std (ddof=1); CAGR compounding; drawdown from a peak "
        "starting at the initial value; excess returns over the daily-compounded "
        "risk-free rate; daily turnover one-way: (bought + sold) / 2 / value",
        "equity_backtest": __version__,
    }


def fmt(key: str, value) -> str:
    """The one formatting used on the page."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key in PERCENT:
        return f"{value * 100:.2f}%"
    if key in MONEY:
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,d}"
    return f"{value:.3f}"


def _table(rows: list[tuple[str, list]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr><td>"
        + html.escape(LABELS.get(k, k))
        + "</td>"
        + "".join(f'<td data-key="{html.escape(k)}">{html.escape(fmt(k, v))}</td>' for v in vals)
        + "</tr>"
        for k, vals in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(metrics: dict, figures: dict[str, bytes]) -> str:
    p, b = metrics["portfolio"], metrics["benchmark"]
    returns_table = _table([(k, [p[k], b[k]]) for k in p], ["", "Portfolio", "Index"])
    relative_table = _table([(k, [v]) for k, v in metrics["relative"].items()], ["vs index", ""])
    trading_table = _table([(k, [v]) for k, v in metrics["trading"].items()], ["Trading", ""])
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for name, png in figures.items()
    )
    per = metrics["period"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tear sheet {html.escape(metrics["run"])}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;color:#222}}
table{{border-collapse:collapse;margin:1em 2em 1em 0;display:inline-table;vertical-align:top}}
td,th{{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}} td:first-child,th:first-child{{text-align:left}}
img{{max-width:100%}} .meta{{color:#555}}
</style></head><body>
<h1>Tear sheet</h1>
<p class="meta">Run <code>{html.escape(metrics["run"])}</code> ({html.escape(str(metrics["status"]))}),
{per["start"]} to {per["end"]} ({per["days"]:,d} trading days).
Starting value <span data-key="starting_value">{fmt("starting_value", metrics["starting_value"])}</span>,
final value <span data-key="final_value">{fmt("final_value", metrics["final_value"])}</span>,
risk-free rate <span data-key="risk_free_rate">{fmt("risk_free_rate", metrics["risk_free_rate"])}</span>.</p>
{images}
{returns_table}{relative_table}{trading_table}
<p class="meta">{html.escape(metrics["conventions"])}. Generated by equity_backtest {metrics["equity_backtest"]}.</p>
</body></html>
"""


def evaluate(run_dir: str | Path) -> dict:
    """Write metrics.json, returns.csv and tearsheet.html into the run folder; return the metrics."""
    run = load_run(run_dir)
    metrics = compute_metrics(run)
    out = Path(run_dir)
    atomic_write_text(
        out / "metrics.json", json.dumps(_jsonable(metrics), indent=1, sort_keys=True) + "\n"
    )
    frame = run.returns.to_frame().join(run.benchmark)
    atomic_write_text(
        out / "returns.csv",
        frame.rename_axis("date")
        .reset_index()
        .to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d"),
    )
    figures = {"equity curve and drawdown": equity_and_drawdown(run.returns, run.benchmark)}
    atomic_write_bytes(out / "tearsheet.html", render_html(metrics, figures).encode("utf-8"))
    return metrics


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
