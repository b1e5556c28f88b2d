#!/usr/bin/env python3
"""04: evaluate a run: metrics.json, returns.csv and a self-contained tearsheet.html in its folder.

Without a run folder, evaluates the latest finished run in results/.
"""

from pathlib import Path

from equity_backtest import archive, cli
from equity_backtest.evaluation.tearsheet import evaluate, fmt


def main() -> int:
    parser = cli.parser(__doc__, window=False)
    parser.add_argument("run_dir", nargs="?", help="a run folder (default: the latest in results/)")
    args = parser.parse_args()
    cli.setup_logging(args)
    params = cli.load(args)

    run_dir = Path(args.run_dir) if args.run_dir else archive.latest_run(params.results_dir)
    metrics = evaluate(run_dir)
    p, b = metrics["portfolio"], metrics["benchmark"]
    for key in ("annual_return", "annual_volatility", "sharpe_ratio", "max_drawdown"):
        cli.log.info("%-18s portfolio %9s   index %9s", key, fmt(key, p[key]), fmt(key, b[key]))
    contest = metrics["contest"]
    cli.log.info(
        "contest checks (score %.3f)%s:",
        contest["score"],
        f" - {contest['note']}" if contest["note"] else "",
    )
    for row in contest["checks"]:
        cli.log.info(
            "  %-23s %-12s worst %9s   soft %-11s hard %s",
            row["constraint"],
            row["result"],
            fmt("worst", row["worst"]),
            row["soft_limit"],
            row["hard_limit"],
        )
    for line in metrics["findings"]:
        cli.log.info("finding: %s", line)
    cli.log.info("tear sheet: %s", run_dir / "tearsheet.html")
    print(run_dir / "tearsheet.html")
    return 0


if __name__ == "__main__":
    cli.run(main)
