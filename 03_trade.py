#!/usr/bin/env python3
"""03: run the heartbeat loop over the point-in-time dataset and archive the run.

Every trading day from start to end (inclusive): corporate actions, fills of yesterday's orders
at today's open, protective stops, financing, mark to market at the close; on rebalance days
compute_weights sees the view at the close and its weights become orders for the next day.
Writes results/<run>/ (see README).

Trials: several --algorithm files, --trials FOLDER (every .py in it) and/or --grid NAME=V1,V2
(repeatable; all combinations) run each combination in its own process with its own archive and
seed, --jobs at a time (or as Ray tasks with --ray), under results/<time>__trials/. A killed sweep
stays hidden; rerunning the same command finishes it.

Backtests may run at once: each writes its own hidden folder, renamed into place when complete.

Live (--live, for cron after 01 and 02): the same algorithm trades the account in
live/<account>/ on every bar the dataset has that the account has not, exactly as a backtest's
days, and journals each (docs/live.md).
"""

import argparse
import os
from pathlib import Path

from equity_backtest import api, cli
from equity_backtest.errors import EXIT_PORTFOLIO_BANKRUPT, BadInputError
from equity_backtest.run import live, live_loop, trials


def main() -> int:
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--algorithm",
        action="append",
        metavar="PATH",
        help="the algorithm file (default: parameters' algorithm); repeat for trials",
    )
    parser.add_argument(
        "--run-dir", metavar="PATH", help="archive folder (default: results/<time>__...)"
    )
    parser.add_argument(
        "--trials", metavar="FOLDER", help="run every algorithm file in FOLDER as a trial"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a parameter to vary across trials (repeatable: all combinations)",
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="trials run at once (default: CPU count)"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=os.environ.get("RAY_ADDRESS"),
        help="run trials on Ray: 'local', 'auto' or a cluster address (default: $RAY_ADDRESS)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="trade the live account on the dataset's new bars, then stop (docs/live.md)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="with --live: one pass over the new bars, then stop (the default; what cron runs)",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="with --live: keep running, a heartbeat after each session's close (01, 02, the "
        "new bars) until stopped",
    )
    parser.add_argument(
        "--accept-change",
        action="store_true",
        help="with --live: go on after the algorithm or trading parameters changed (journaled)",
    )
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help=argparse.SUPPRESS,  # accepted for older scripts: 03 takes no stage lock now
    )
    args = parser.parse_args()
    cli.setup_logging(args)

    algorithms = args.algorithm or []
    if args.live:
        return run_live(args, algorithms)
    if len(algorithms) > 1 or args.trials or args.grid:
        with cli.trading_stores(cli.load(args)) as params:
            return run_trials(args, algorithms, params)
    run = api.backtest(
        cli.load(args, algorithm=algorithms[0] if algorithms else None),
        run_dir=args.run_dir,
        progress=cli.show_progress(args),
        parameters_file=args.parameters,
    )
    print(run.folder)
    return EXIT_PORTFOLIO_BANKRUPT if run.status != "completed" else 0


def run_live(args, algorithms: list[str]) -> int:
    """One cron invocation of the live account: every new bar, journaled."""
    if len(algorithms) > 1 or args.trials or args.grid:
        raise BadInputError("--live trades one algorithm: give at most one --algorithm")
    if args.once and args.loop:
        raise BadInputError("--once and --loop: choose one (--once is what cron runs)")
    params = cli.load(args, algorithm=algorithms[0] if algorithms else None)
    if args.loop:
        live_loop.loop(params, accept_change=args.accept_change)
        return 0
    outcome = live.step(params, accept_change=args.accept_change, progress=cli.show_progress(args))
    days = f"{len(outcome.days)} new bar(s)" if outcome.days else "no new bar"
    print(f"{outcome.folder}: {days}, last bar {outcome.last_day}, value {outcome.value:,.2f}")
    return EXIT_PORTFOLIO_BANKRUPT if outcome.status.startswith("stopped") else 0


def run_trials(args, algorithms: list[str], params) -> int:
    """Each combination of algorithm files and grid values as its own run, then the set."""
    plan = trials.plan(params, algorithms, args.trials, args.grid)
    folder, code = trials.run_all(
        plan,
        params,
        args.parameters,
        Path(__file__).resolve(),
        args.jobs,
        Path(args.run_dir) if args.run_dir else None,
        {"start": args.start, "end": args.end},
        cli.show_progress(args),
        args.ray,
    )
    print(folder)
    return code


if __name__ == "__main__":
    cli.run(main)
