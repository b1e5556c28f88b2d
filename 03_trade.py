#!/usr/bin/env python3
"""03: run the heartbeat loop over the point-in-time dataset and archive the run.

Every trading day from start to end (inclusive): corporate actions, fills of yesterday's orders
at today's open, mark to market at the close; on rebalance days compute_weights sees the view at
the close and its weights become orders for the next day. Writes results/<run>/ (see README).
"""

import datetime as dt
from pathlib import Path

from equity_backtest import archive, cli
from equity_backtest.benchmark import index_returns
from equity_backtest.engine.clock import heartbeat_range
from equity_backtest.engine.loop import run_backtest
from equity_backtest.errors import EXIT_PORTFOLIO_BANKRUPT
from equity_backtest.panel import load_panel
from equity_backtest.strategy_loader import load_compute_weights


def main() -> int:
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--algorithm", metavar="PATH", help="the algorithm file (default: parameters' algorithm)"
    )
    parser.add_argument(
        "--run-dir", metavar="PATH", help="archive folder (default: results/<time>__...)"
    )
    args = parser.parse_args()
    cli.setup_logging(args)
    params = cli.load(args, algorithm=args.algorithm)

    algorithm_path = Path(params.algorithm)
    compute_weights = load_compute_weights(algorithm_path)
    name = archive.run_name(dt.datetime.now(dt.UTC), params, algorithm_path)
    run_dir = Path(args.run_dir) if args.run_dir else Path(params.results_dir) / name
    tmp = archive.start_run_dir(run_dir)
    handler = cli.add_log_file(tmp / "run.log")
    cli.log.info(
        "run %s: %s on %s/%s, %s to %s, rebalance %s",
        run_dir.name,
        algorithm_path.name,
        params.source,
        params.index,
        params.start,
        params.end,
        params.rebalance,
    )

    panel = load_panel(params)
    cli.log.info(
        "dataset %s: %d trading days x %d tickers",
        panel.dataset_version,
        len(panel.dates),
        len(panel.tickers),
    )
    result = run_backtest(
        panel, params, compute_weights, algorithm_path.name, progress=cli.show_progress(args)
    )
    benchmark = index_returns(panel, *heartbeat_range(panel.dates, params.start, params.end))
    benchmark = benchmark.loc[: result.runtime_log["date"].iloc[-1]]

    archive.write_archive(
        tmp,
        result,
        params,
        Path(args.parameters),
        algorithm_path,
        panel,
        benchmark,
        Path(params.datasets_dir),
    )
    cli.log.info(
        "final value %.2f (%s); archive: %s",
        result.runtime_log["value"].iloc[-1],
        result.status,
        run_dir,
    )
    handler.close()
    archive.finish_run_dir(tmp, run_dir)
    print(run_dir)
    return EXIT_PORTFOLIO_BANKRUPT if result.status != "completed" else 0


if __name__ == "__main__":
    cli.run(main)
