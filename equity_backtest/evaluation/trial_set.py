"""Evaluate a set of trials together (V7, S4): a comparison table and the overfitting analysis.

The set is a trials folder written by 03 (every sub-folder with a run.json) or any list of run
folders. Each run gets its own tear sheet; the set gets overfitting.json, trials_summary.csv and
a self-contained overfitting.html.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import pandas as pd

from ..errors import BadInputError
from ..infra.storage import atomic_write_bytes, atomic_write_csv, atomic_write_text
from . import page, plots
from .overfitting import analyse
from .returns import load_run as evaluate_info
from .tearsheet import _jsonable, evaluate

log = logging.getLogger(__name__)

SUMMARY = ("annual_return", "annual_volatility", "sharpe_ratio", "max_drawdown")


def runs_in(folder: Path) -> list[Path]:
    """The finished runs inside a complete trials folder (sub-folders holding run.json). A sweep
    that was killed is hidden and has no trials.csv: it is refused, never analysed in part."""
    if folder.name.startswith(".") or not (folder / "trials.csv").is_file():
        raise BadInputError(
            f"{folder} is not a finished trials folder (no trials.csv): the sweep was "
            "interrupted; rerun the same 03 command to finish it"
        )
    runs = sorted(p for p in folder.iterdir() if p.is_dir() and (p / "run.json").is_file())
    listed = pd.read_csv(folder / "trials.csv")
    if len(runs) < len(listed):
        log.warning(
            "%d of %d trials in %s have no archive (they failed: see trials.csv); the set is "
            "analysed without them",
            len(listed) - len(runs),
            len(listed),
            folder.name,
        )
    return runs


def evaluate_set(runs: list[Path], out: Path, blocks: int = 16, **overrides) -> dict:
    if blocks < 2 or blocks % 2:
        raise BadInputError(f"--blocks {blocks}: CSCV needs an even number of blocks, 2 or more")
    if len(runs) < 2:
        raise BadInputError("an overfitting analysis needs at least two runs")
    rows, returns = [], {}
    for run in runs:
        m = evaluate(run, **overrides)
        rows.append(
            {
                "trial": run.name,
                **{k: m["portfolio"][k] for k in SUMMARY},
                "annual_turnover": m["trading"]["annual_turnover"],
                "total_costs": m["trading"]["total_costs"],
                "final_value": m["final_value"],
                "status": m["status"],
            }
        )
        returns[run.name] = pd.read_csv(run / "returns.csv", parse_dates=["date"]).set_index(
            "date"
        )["portfolio"]
    frame = pd.DataFrame(returns).dropna()  # the days every trial traded
    summary = pd.DataFrame(rows)
    if len(frame) < 4 * blocks:
        raise BadInputError(
            f"the runs share only {len(frame)} days; at least {4 * blocks} are needed for "
            f"{blocks} blocks (use fewer --blocks or longer runs)"
        )
    first = evaluate_info(runs[0], **overrides)
    result, cscv = analyse(frame, blocks, first.rf_daily, first.periods)
    result["findings"] = _findings(result)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "overfitting.json", json.dumps(_jsonable(result), indent=1, sort_keys=True) + "\n"
    )
    atomic_write_csv(out / "trials_summary.csv", summary)
    figure = plots.overfitting(
        cscv.logits, cscv.in_sample, cscv.out_of_sample, cscv.slope, cscv.intercept
    )
    atomic_write_bytes(out / "overfitting.html", _html(result, summary, figure).encode("utf-8"))
    return result


def _findings(r: dict) -> list[str]:
    pbo = r["pbo"]
    if pbo >= 0.5:
        first = (
            f"PBO = {pbo:.2f}: the best in-sample trial is likely overfit; it ranked at or below the "
            "out-of-sample median in most splits."
        )
    elif pbo >= 0.2:
        first = f"PBO = {pbo:.2f}: a real risk that the best in-sample trial is overfit."
    else:
        first = (
            f"PBO = {pbo:.2f}: the best in-sample trial kept its edge out of sample in most splits."
        )
    dsr = r["deflated_sharpe"]["deflated_sharpe_ratio"]
    second = (
        f"The best trial ({r['best_trial']}, Sharpe {r['best_annual_sharpe']:.2f}) has a deflated Sharpe "
        f"ratio of {dsr:.2f}: "
        + (
            "its Sharpe ratio survives the number of trials tried."
            if dsr >= 0.95
            else "with this many trials its Sharpe ratio could be luck."
        )
    )
    third = (
        f"Out of sample the in-sample winner lost money in {r['probability_of_loss']:.0%} of splits; "
        f"degradation slope {r['degradation_slope']:.2f}."
    )
    return [first, second, third]


def _html(result: dict, summary: pd.DataFrame, figure: bytes) -> str:
    table = summary.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
    items = "".join(f"<li>{html.escape(f)}</li>" for f in result["findings"])
    return page.page(
        "Overfitting analysis",
        f"""<h1>Overfitting analysis of {len(result["trials"])} trials</h1>
<p>{result["days"]:,d} common days, {result["blocks"]} blocks, {result["splits"]:,d} splits (CSCV).
PBO <b>{result["pbo"]:.3f}</b>; degradation slope {result["degradation_slope"]:.3f}; probability of loss
{result["probability_of_loss"]:.3f}; deflated Sharpe ratio of the best trial
{result["deflated_sharpe"]["deflated_sharpe_ratio"]:.3f}.</p>
<ul>{items}</ul>
{page.image("CSCV", figure)}
<h2>Trials</h2>{table}""",
    )
