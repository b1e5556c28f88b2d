#!/usr/bin/env python3
"""02: compact the datalog into a new version of the feather datasets.

Reads only logfiles not yet in the current version, merges them (the latest query wins), writes
datasets/vNNNNNN/ with a manifest, then switches datasets/CURRENT to it atomically.
A bad logfile stops the build with a message naming file, row and field (exit code 2) unless
--skip-bad-logs is given, in which case it is left out and listed in the manifest.
The datalog itself is never modified.
"""

from equity_backtest import cli
from equity_backtest.data import datasets, quality
from equity_backtest.infra import remote


def main() -> int:
    parser = cli.parser(__doc__, window=False)
    parser.add_argument(
        "--full",
        action="store_true",
        help="rebuild from every logfile instead of only the new ones (bootstrap)",
    )
    parser.add_argument(
        "--skip-bad-logs",
        action="store_true",
        help="leave out unreadable logfiles (with a warning) instead of stopping",
    )
    args = parser.parse_args()
    cli.setup_logging(args, cli.stage_log_file("02_build_datasets"))
    params = cli.load(args)
    cache = params.store_cache_dir
    with (
        remote.mirrored(params.datalog_dir, cache, push=False) as datalog,
        remote.mirrored(params.datasets_dir, cache, pull=remote.dataset_version(None)) as out,
        cli.stage_lock(out, "02_build_datasets"),
    ):
        result = datasets.build(
            datalog,
            out,
            skip_bad_logs=args.skip_bad_logs,
            full=args.full,
            progress=cli.show_progress(args),
            calendar=params.exchange_calendar,
        )
        if result.up_to_date:
            cli.log.info(
                "datasets %s are up to date (version %s)", params.datasets_dir, result.version
            )
        else:
            rows = ", ".join(f"{t} {n:,d}" for t, n in result.rows.items())
            cli.log.info(
                "built %s/%s from %d new logfiles: %s",
                params.datasets_dir,
                result.version,
                result.new_logs,
                rows,
            )
        for name in result.skipped_logs:
            cli.log.warning("skipped bad logfile %s", name)
        if result.quality:
            for line in quality.summary_lines(result.quality):
                cli.log.info("%s", line)
            cli.log.info(
                "data-quality report: %s/%s/quality_report.md", params.datasets_dir, result.version
            )
        return 0


if __name__ == "__main__":
    cli.run(main)
