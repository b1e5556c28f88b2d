"""The study's files: setups_report.json, outcomes.csv and setups_report.html."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...evaluation import page as report_page
from ...infra.storage import atomic_write_bytes, atomic_write_text
from .rules import EXITS


def report_files(report: dict, outcomes: pd.DataFrame, out: Path) -> Path:
    """setups_report.json, outcomes.csv and setups_report.html in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(report, default=_plain), parse_constant=lambda c: None)
    atomic_write_text(out / "setups_report.json", json.dumps(clean, indent=1) + "\n")
    atomic_write_text(out / "outcomes.csv", outcomes.to_csv(index=False, float_format="%.10g"))
    atomic_write_bytes(out / "setups_report.html", _html(clean).encode("utf-8"))
    return out / "setups_report.html"


def _plain(v):
    if isinstance(v, np.integer | np.floating):
        return v.item()
    return str(v)


def _fmt(v, pct=False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.1%}" if pct else f"{v:+.3f}" if isinstance(v, float) else html.escape(str(v))


def _grade_cells(g: dict) -> str:
    keys = ("count", "hit_rate", "expectancy_r", "median_r", "profit_factor",
            "expectancy_without_top5pct_r")  # fmt: skip
    return "".join(f"<td>{_fmt(g.get(k), k == 'hit_rate')}</td>" for k in keys)


def _html(report: dict) -> str:
    head = ("<th>count</th><th>hit rate</th><th>expectancy R</th><th>median R</th>"
            "<th>profit factor</th><th>without top 5%</th>")  # fmt: skip
    rows = []
    for e, groups in report["exits"].items():
        for group, g in groups.items():
            for basis in ("gross", "net"):
                rows.append(
                    f"<tr><td>{e}</td><td>{group}</td><td>{basis}</td>{_grade_cells(g[basis])}</tr>"
                )
    parts = [
        f"<h1>Setup study: {html.escape(report['setups_file'])}</h1>",
        f"<p class='meta'>{report['setups']} setups on {report['study_days']} days, "
        f"{report['qualified']} qualified (gates {html.escape(json.dumps(report['gates']))}); "
        f"outcomes {html.escape(json.dumps(report['outcome_counts']))}</p>",
        "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report["findings"]) + "</ul>",
        f"<h2>Qualified and control</h2><table><tr><th>exit</th><th>group</th><th>R</th>{head}</tr>{''.join(rows)}</table>",
    ]  # fmt: skip
    if "threshold_sweep" in report:
        sw = report["threshold_sweep"]
        body = "".join(
            f"<tr><td>{r['cutoff']}</td><td>{e}</td>{_grade_cells(r[e])}</tr>"
            for r in sw["rows"] for e in EXITS
        )  # fmt: skip
        parts.append(f"<h2>Threshold sweep of {html.escape(sw['feature'])} (net)</h2><table><tr><th>cutoff</th><th>exit</th>{head}</tr>{body}</table>")  # fmt: skip
    if report.get("ablation"):
        body = "".join(
            f"<tr><td>{html.escape(r['without'])}</td><td>{e}</td>{_grade_cells(r[e])}</tr>"
            for r in report["ablation"] for e in EXITS
        )  # fmt: skip
        parts.append(f"<h2>Gate ablation (net)</h2><table><tr><th>without</th><th>exit</th>{head}</tr>{body}</table>")  # fmt: skip
    if report["time_exits"]:
        body = "".join(
            f"<tr><td>{r['hold_bars']}</td>{_grade_cells(r)}</tr>" for r in report["time_exits"]
        )
        parts.append(f"<h2>Time exits, qualified setups (net)</h2><table><tr><th>hold bars</th>{head}</tr>{body}</table>")  # fmt: skip
    if report.get("book"):
        b = report["book"]
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in b.items()
        )
        parts.append(f"<h2>The book through the engine</h2><table>{cells}</table>"
                     f"<p class='meta'>Its tear sheet: {html.escape(b['run_folder'])}/tearsheet.html</p>")  # fmt: skip
    body = "".join(
        f"<tr><td>{html.escape(r['feature'])}</td><td>{r['windows']}</td><td>{_fmt(r['mean_ic'])}</td><td>{_fmt(r['t_stat'])}</td></tr>"
        for r in report["feature_ics"]
    )  # fmt: skip
    parts.append(f"<h2>Feature rank ICs with R (non-overlapping windows)</h2><table><tr><th>feature</th><th>windows</th><th>mean IC</th><th>t-stat</th></tr>{body}</table>")  # fmt: skip
    return report_page.page(f"Setup study: {report['setups_file']}", "\n".join(parts))
