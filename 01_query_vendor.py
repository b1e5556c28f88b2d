#!/usr/bin/env python3
"""01: query the vendor and write its raw responses to the datalog (immutable logfiles).

source = "simulated": the built-in seeded market (no network, no terminal).
source = "wrds": CRSP and Compustat on WRDS (pip install -e ".[wrds]"; WRDS_USERNAME in .env).
source = "bloomberg": a Bloomberg terminal through xbbg (pip install 'equity_backtest[bloomberg]').
For these two, a rerun resumes, skipping what was logged within requery_after_hours, unless --force.
SQL warehouses: sql_url and sql_mappings (a query per mapping) in parameters.py.
File imports (any other source name): each --import MAPPING INPUT (or parameters.py's
file_imports) reads a CSV, Parquet or Excel export through its declarative mapping.
Rerunning with the same inputs writes nothing new: every file is already logged.
"""

from equity_backtest import cli
from equity_backtest.data import vendors
from equity_backtest.infra import remote


def main() -> int:
    parser = cli.parser(__doc__, window=False)
    parser.add_argument(
        "--datalog-dir", help="where logfiles go (default: parameters' datalog_dir)"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        nargs=2,
        action="append",
        default=[],
        metavar=("MAPPING", "INPUT"),
        help="import an export file through a mapping (repeatable)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="ask the vendor again for what was already logged in the current query window",
    )
    args = parser.parse_args()
    cli.setup_logging(args, cli.stage_log_file("01_query_vendor"))
    params = cli.load(args, datalog_dir=args.datalog_dir)
    with (
        remote.mirrored(params.datalog_dir, params.store_cache_dir, immutable=True) as datalog,
        cli.stage_lock(datalog, "01_query_vendor"),
    ):
        params = params.replace(datalog_dir=str(datalog))
        counts = vendors.query(
            params, args.imports, force=args.force, progress=cli.show_progress(args)
        )
        cli.log.info(
            "datalog %s: %d logfiles written, %d already there",
            params.datalog_dir,
            counts["written"],
            counts["already_logged"],
        )
        return 0


if __name__ == "__main__":
    cli.run(main)
