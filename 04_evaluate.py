#!/usr/bin/env python3
"""04: evaluate a run: metrics.json, CSV tables, pyfolio exports and a self-contained
tearsheet.html in its folder, with the contest checks and findings printed.

Without a folder, evaluates the latest finished run in results/. Given a trials folder (from
03 --grid/--trials) or several run folders, evaluates each and then the set: the probability of
backtest overfitting (CSCV), degradation, probability of loss and deflated Sharpe ratio, written to
overfitting.json, trials_summary.csv and overfitting.html (in the trials folder, or --out).
With --live, the live account: its own tear sheet over the live period, the same algorithm
backtested over its days (a run with its tear sheet) and live against backtest day by day, in
the account's reports/ (docs/live.md).
"""

import datetime as dt
import json
from pathlib import Path

from equity_backtest import api, cli
from equity_backtest.config import parse_assignments
from equity_backtest.engine import archive
from equity_backtest.errors import BadInputError
from equity_backtest.evaluation.returns import EVALUATION_SETTINGS
from equity_backtest.evaluation.tearsheet_html import fmt
from equity_backtest.evaluation.trial_set import evaluate_set, runs_in
from equity_backtest.infra import remote


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def report(metrics: dict, run_dir: Path) -> None:
    """The headline numbers, the contest table and the findings, on the console."""
    p, b = metrics["portfolio"], metrics["benchmark"]
    against = metrics.get("benchmark_label", "index")
    for key in ("annual_return", "annual_volatility", "sharpe_ratio", "max_drawdown"):
        cli.log.info(
            "%-18s portfolio %9s   %s %9s", key, fmt(key, p[key]), against, fmt(key, b[key])
        )
    contest = metrics["contest"]
    note = f" - {contest['note']}" if contest["note"] else ""
    if not contest.get("checked", True):
        cli.log.info("contest checks: %s", contest["note"])
    else:
        cli.log.info("contest checks (score %s)%s:", fmt("score", contest["score"]), note)
    for row in contest["checks"]:
        cli.log.info(
            "  %-23s %-12s worst %9s   soft %-11s hard %s",
            row["constraint"],
            row["result"],
            fmt("worst", row["worst"]),
            row["soft_limit"],
            row["hard_limit"],
        )
    if "llm" in metrics:
        llm = metrics["llm"]
        for flag, part in [("all", llm["all"]), *llm["by_window"].items()]:
            cli.log.info(
                "LLM decisions (%s): %d, hit rate %s, parse failures %s, truncated %s",
                flag,
                part["decisions"],
                percent(part["hit_rate"]),
                percent(part["parse_failure_rate"]),
                percent(part["truncation_rate"]),
            )
    for line in metrics["findings"]:
        cli.log.info("finding: %s", line)
    cli.log.info("tear sheet: %s", run_dir / "tearsheet.html")


def find_run(given: str, results_dir: str) -> Path:
    """A run or trials folder as given, or by its name inside results_dir (a store's mirror)."""
    path = Path(given)
    return path if path.exists() else Path(results_dir) / path.name


def main() -> int:
    parser = cli.parser(__doc__, window=False)
    parser.add_argument(
        "runs", nargs="*", help="a run folder, a trials folder, or several run folders"
    )
    parser.add_argument("--blocks", type=int, default=16, help="CSCV blocks S (even; default 16)")
    parser.add_argument(
        "--out", metavar="FOLDER", help="where the overfitting analysis of several runs goes"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="evaluate the live account (parameters' live_dir/live_account): the same algorithm "
        "backtested over its days, and live against backtest",
    )
    parser.add_argument(
        "--contest",
        action="store_true",
        help="check the market-neutral contest's rules (same as --set contest_checks=true)",
    )
    args = parser.parse_args()
    if args.contest:
        args.set.append("contest_checks=true")
    cli.setup_logging(args, cli.stage_log_file("04_evaluate"))
    overrides = evaluation_overrides(args.set, live=args.live)
    if args.blocks < 2 or args.blocks % 2:
        raise BadInputError(f"--blocks {args.blocks}: give an even number of blocks, 2 or more")
    params = cli.load(args)
    if args.live:
        out = api.live_report(params)
        if (out / "investor_record.json").is_file():
            summary = json.loads((out / "investor_record.json").read_text())
            cli.log.info("investor's record: %d plans, %d with their fills; shortfall %.2f",
                         summary["plans"], summary["plans_with_fills"],
                         summary["implementation_shortfall"])  # fmt: skip
            print(out / "implementation_shortfall.csv")
            return 0
        summary = json.loads((out / "live_vs_backtest.json").read_text())
        cli.log.info(
            "live %s to %s: %s against the backtest's %s; tracking difference %s a year, "
            "tracking error %s, largest gap in value %.2f",
            summary["first_day"], summary["last_day"], percent(summary["live_total_return"]),
            percent(summary["backtest_total_return"]),
            percent(summary["tracking_difference_annual"]),
            percent(summary["tracking_error_annual"]), summary["largest_value_gap"],
        )  # fmt: skip
        print(out / "live" / "tearsheet.html")
        return 0
    cache = params.store_cache_dir
    with (
        remote.mirrored(params.results_dir, cache) as results,
        remote.mirrored(params.datasets_dir, cache, push=False),  # the runs' dataset versions
    ):
        params = params.replace(results_dir=str(results))
        overrides = {k: getattr(params, k) for k in overrides}
        return evaluate_runs(args, params, overrides)


def evaluation_overrides(assignments: list[str], live: bool = False) -> list[str]:
    """The names --set may change here: where the stores are, and evaluation settings (with
    --live, which live account too). The rest was fixed when 03 ran the backtest, so changing it
    here would be silently ignored: refused."""
    names = list(parse_assignments(assignments))
    stores = ("results_dir", "datasets_dir", "store_cache_dir")
    for name in names:
        if live and name.startswith("live_"):
            continue
        if name not in (*stores, *EVALUATION_SETTINGS):
            raise BadInputError(
                f"--set {name}: 04 evaluates a finished run, so only its evaluation settings "
                f"({', '.join(EVALUATION_SETTINGS)}) and the stores ({', '.join(stores)}) can be "
                "changed here; run 03 again to change the backtest"
            )
    return [n for n in names if n in EVALUATION_SETTINGS]


def evaluate_runs(args, params, overrides: dict) -> int:
    """One run: its metrics and tear sheet. A trials folder or several runs: each, then the set."""
    folders = [find_run(r, params.results_dir) for r in args.runs] or [
        archive.latest_run(params.results_dir)
    ]
    if len(folders) == 1 and not (folders[0] / "run.json").is_file() and folders[0].is_dir():
        out, runs = folders[0], runs_in(folders[0])  # a trials folder
    elif len(folders) > 1:
        out = (
            Path(args.out)
            if args.out
            else (
                Path(params.results_dir) / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}__overfitting"
            )
        )
        runs = folders
    else:
        metrics = api.load(folders[0]).evaluate(**overrides)  # one 04 per run folder at a time
        report(metrics, folders[0])
        print(folders[0] / "tearsheet.html")
        return 0

    with cli.stage_lock(out, "04_evaluate"):
        result = evaluate_set(runs, out, args.blocks, **overrides)
    for line in result["findings"]:
        cli.log.info("overfitting: %s", line)
    print(out / "overfitting.html")
    return 0


if __name__ == "__main__":
    cli.run(main)
