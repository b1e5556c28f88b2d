"""A live account's own page (E12): its equity and drawdown against the backtest of the same
days, the usual return metrics of each, the tracking figures and, for a broker that reports
fills, every order's implementation shortfall. Self-contained HTML (the chart inline)."""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from . import metrics, plots

SHOWN = ("cumulative_return", "annual_return", "annual_volatility", "sharpe_ratio_rf0",
         "max_drawdown", "calmar_ratio")  # fmt: skip


def figures(live: pd.Series, backtest: pd.Series) -> dict[str, dict[str, float]]:
    return {
        "live": metrics.return_metrics(live.to_numpy(), 0.0),
        "backtest": metrics.return_metrics(backtest.to_numpy(), 0.0),
    }


def page(account: str, live: pd.Series, backtest: pd.Series, summary: dict,
         shortfall: pd.DataFrame) -> str:  # fmt: skip
    chart = base64.b64encode(plots.equity_and_drawdown(live, backtest, "backtest")).decode()
    both = figures(live, backtest)
    rows = "".join(
        f"<tr><td>{name.replace('_', ' ')}</td><td>{_pct(both['live'][name])}</td>"
        f"<td>{_pct(both['backtest'][name])}</td></tr>"
        for name in SHOWN
    )
    tracking = "".join(
        f"<tr><td>{k.replace('_', ' ')}</td><td>{html.escape(_text(v))}</td></tr>"
        for k, v in summary.items()
        if not isinstance(v, dict)
    )
    orders = (
        shortfall.to_html(index=False, float_format=lambda x: f"{x:,.4f}", na_rep="")
        if len(shortfall)
        else "<p>No broker-reported fills (the paper broker fills as the backtest does).</p>"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Live account {html.escape(account)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body><h1>Live account {html.escape(account)}</h1>
<p>{summary["first_day"]} to {summary["last_day"]}, {summary["days"]} bars, against a backtest of
the same algorithm over the same days.</p>
<p>Tear sheets: <a href="live/tearsheet.html">the live account's</a>, <a
href="backtest/tearsheet.html">the backtest's</a>.</p>
<img alt="equity and drawdown, live and backtest" src="data:image/png;base64,{chart}">
<h2>Returns</h2><table><tr><th></th><th>live</th><th>backtest</th></tr>{rows}</table>
<h2>Live against backtest</h2><table>{tracking}</table>
<h2>Orders the broker filled</h2>{orders}
</body></html>
"""


def _pct(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2%}"


def _text(value) -> str:
    return f"{value:,.6g}" if isinstance(value, float) else str(value)
