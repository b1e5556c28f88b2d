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
        return f"{v:,d}"
    return f"{v:.1%}" if pct else f"{v:+.3f}" if isinstance(v, float) else html.escape(str(v))


def _r(v) -> str:
    return "-" if v is None else f"{v:+.3f}R"


def _interval(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "-"
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _t(v) -> str:
    return "-" if v is None else f"{v:.2f}"


HEAD = (
    "<th>count</th><th>hit rate</th><th>expectancy</th><th>95% interval</th><th>t</th>"
    "<th>naive t</th><th>median</th><th>profit factor</th><th>without top 5%</th>"
)


def _grade_cells(g: dict) -> str:
    if not g.get("count"):
        return "<td>0</td>" + "<td>-</td>" * 8
    pf = g.get("profit_factor")
    cells = [
        _fmt(g["count"]), _fmt(g.get("hit_rate"), True), _r(g.get("expectancy_r")),
        _interval(g.get("ci95_r")), _t(g.get("t_stat")), _t(g.get("t_stat_naive")),
        _r(g.get("median_r")), "-" if pf is None else f"{pf:.2f}",
        _r(g.get("expectancy_without_top5pct_r")),
    ]  # fmt: skip
    return "".join(f"<td>{c}</td>" for c in cells)


def _charts(report: dict) -> dict[str, bytes]:
    """The report's figures: the R distribution, expectancy by threshold and by holding time
    (with 95% intervals), and the book's equity against the index."""
    from ...evaluation.plots import plt, png

    out = {}
    dist = report.get("r_distribution")
    if dist:
        edges = np.asarray(dist["edges"])
        mids, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        fig, ax = plt.subplots(figsize=(10, 3.5))
        for name, alpha in (("control", 0.45), ("qualified", 0.8)):
            counts = np.asarray(dist[name], dtype=float)
            share = counts / counts.sum() if counts.sum() else counts
            ax.bar(mids, share, width=width, alpha=alpha, label=f"{name} ({int(counts.sum()):,d})")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(
            f"R net, {dist['exit']} exit (tails gathered at {edges[0]:g}R and {edges[-1]:g}R)"
        )
        ax.set_ylabel("share of setups")
        ax.legend()
        ax.set_title("R-multiple distribution")
        out["R distribution"] = png(fig)
    sweep = report.get("threshold_sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(10, 3.5))
        for k, e in enumerate(EXITS):
            rows = [r for r in sweep["rows"] if r[e].get("count")]
            x = np.array([r["cutoff"] for r in rows]) + (k - 0.5) * 0.01
            _with_intervals(ax, x, [r[e] for r in rows], f"{e} exit")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel(f"minimum {sweep['feature']}")
        ax.set_ylabel("expectancy, R net")
        ax.legend()
        ax.set_title("Expectancy by threshold (95% intervals)")
        out["expectancy by threshold"] = png(fig)
    if report.get("time_exits"):
        fig, ax = plt.subplots(figsize=(10, 3.5))
        rows = [r for r in report["time_exits"] if r.get("count")]
        _with_intervals(
            ax, np.array([r["hold_bars"] for r in rows]), rows, "hold N bars, stop kept"
        )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("bars held")
        ax.set_ylabel("expectancy, R net")
        ax.legend()
        ax.set_title("Time exits, qualified setups (95% intervals)")
        out["time exits"] = png(fig)
    book = report.get("book")
    if book and Path(book["run_folder"]).is_dir():
        from ...evaluation.returns import benchmark_label, load_run

        run = load_run(book["run_folder"])
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.plot(run.returns.index, np.cumprod(1 + run.returns.to_numpy()), label="the book")
        ax.plot(
            run.benchmark.index, np.cumprod(1 + run.benchmark.fillna(0.0).to_numpy()),
            label=benchmark_label(run), alpha=0.8,
        )  # fmt: skip
        ax.set_ylabel("growth of 1")
        ax.legend()
        ax.set_title("The book through the engine, against the index")
        out["book"] = png(fig)
    return out


def _with_intervals(ax, x, grades: list[dict], label: str) -> None:
    y = np.array([g["expectancy_r"] for g in grades], dtype=float)
    ci = np.array(
        [g.get("ci95_r") if g.get("ci95_r") and None not in g["ci95_r"] else [np.nan] * 2
         for g in grades],
        dtype=float,
    ).reshape(-1, 2)  # fmt: skip
    err = np.vstack([y - ci[:, 0], ci[:, 1] - y]) if len(y) else None
    ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label=label)


def _html(report: dict) -> str:
    charts = _charts(report)

    def img(name: str) -> str:
        return report_page.image(name, charts[name]) if name in charts else ""

    rows = []
    for e, groups in report["exits"].items():
        for group, g in groups.items():
            for basis in ("gross", "net"):
                rows.append(
                    f"<tr><td>{e}</td><td>{group}</td><td>{basis}</td>{_grade_cells(g[basis])}</tr>"
                )
    about = report.get("inference", {}).get("about", "")
    parts = [
        f"<h1>Setup study: {html.escape(report['setups_file'])}</h1>",
        f"<p class='meta'>{report['setups']:,d} setups on {report['study_days']:,d} study days, "
        f"{report['qualified']:,d} qualified (gates {html.escape(json.dumps(report['gates']))}); "
        f"outcomes {html.escape(', '.join(f'{k} {v:,d}' for k, v in report['outcome_counts'].items()))}.</p>",
        "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report["findings"]) + "</ul>",
        img("R distribution"),
        f"<h2>Qualified and control</h2><table><tr><th>exit</th><th>group</th><th>R</th>{HEAD}</tr>{''.join(rows)}</table>",
        f"<p class='meta'>Expectancy in R per setup. t and the 95% interval: {html.escape(about)}. "
        "Naive t: mean / (sd / &radic;n), as if every setup were independent.</p>",
    ]  # fmt: skip
    if "threshold_sweep" in report:
        sw = report["threshold_sweep"]
        body = "".join(
            f"<tr><td>{r['cutoff']:g}</td><td>{e}</td>{_grade_cells(r[e])}</tr>"
            for r in sw["rows"] for e in EXITS
        )  # fmt: skip
        parts.append(f"<h2>Threshold sweep of {html.escape(sw['feature'])} (net)</h2>{img('expectancy by threshold')}<table><tr><th>cutoff</th><th>exit</th>{HEAD}</tr>{body}</table>")  # fmt: skip
    if report.get("ablation"):
        body = "".join(
            f"<tr><td>{html.escape(r['without'])}</td><td>{e}</td>{_grade_cells(r[e])}</tr>"
            for r in report["ablation"] for e in EXITS
        )  # fmt: skip
        parts.append(f"<h2>Gate ablation (net)</h2><table><tr><th>without</th><th>exit</th>{HEAD}</tr>{body}</table>")  # fmt: skip
    if report["time_exits"]:
        body = "".join(
            f"<tr><td>{r['hold_bars']}</td>{_grade_cells(r)}</tr>" for r in report["time_exits"]
        )
        parts.append(f"<h2>Time exits, qualified setups (net)</h2>{img('time exits')}<table><tr><th>hold bars</th>{HEAD}</tr>{body}</table>")  # fmt: skip
    if report.get("book"):
        b = report["book"]
        shown = {
            "exit": f"{b.get('exit')} ({b.get('exit_chosen_by')})",
            "positions at most": f"{b['positions']:,d}",
            "risk per trade": f"{b['risk_per_trade']:.2%}",
            "largest weight": f"{b['max_weight']:.0%}",
            "annual return": _fmt(b.get("annual_return"), True),
            "index annual return": _fmt(b.get("index_annual_return"), True),
            "Sharpe ratio": _t(b.get("sharpe_ratio")),
            "index Sharpe ratio": _t(b.get("index_sharpe_ratio")),
            "worst drawdown": _fmt(b.get("max_drawdown"), True),
            "exits": ", ".join(f"{k} {v:,d}" for k, v in (b.get("exits") or {}).items()),
        }
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in shown.items()
        )
        parts.append(f"<h2>The book through the engine</h2>{img('book')}<table>{cells}</table>"
                     f"<p class='meta'>Its tear sheet: {html.escape(b['run_folder'])}/tearsheet.html</p>")  # fmt: skip
    body = "".join(
        f"<tr><td>{html.escape(r['feature'])}</td><td>{r['windows']:,d}</td><td>{_fmt(r['mean_ic'])}</td><td>{_t(r['t_stat'])}</td><td>{_t(r.get('t_stat_naive'))}</td></tr>"
        for r in report["feature_ics"]
    )  # fmt: skip
    parts.append(f"<h2>Feature rank ICs with R (non-overlapping windows)</h2><table><tr><th>feature</th><th>windows</th><th>mean IC</th><th>t (Newey-West)</th><th>naive t</th></tr>{body}</table>")  # fmt: skip
    return report_page.page(f"Setup study: {report['setups_file']}", "\n".join(parts))
