"""`python -m equity_backtest.investor`: today's orders for a theme on the command line, or
`python -m equity_backtest.investor serve` for the same planner in a web page.

    python -m equity_backtest.investor --theme magic_formula --stocks 20 --invest 10000
    python -m equity_backtest.investor --theme quality --stocks 15 --holdings my_holdings.csv
    python -m equity_backtest.investor serve          # the same in a web page (pip install -e ".[web]")
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from .. import cli
from ..data.holdings import read_holdings
from ..data.panel import load_panel
from ..errors import BadInputError
from ..infra.storage import atomic_write_csv, remove_abandoned_temporaries, spreadsheet_safe
from . import planner, record
from .planner import plan, show, staleness, theme_path


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        return serve_main(sys.argv[2:])
    parser = cli.parser(planner.__doc__, window=False, prog="python -m equity_backtest.investor")
    parser.add_argument(
        "--theme",
        required=True,
        help="a bundled theme (e.g. magic_formula) or an algorithm .py file",
    )
    parser.add_argument(
        "--stocks", type=int, default=20, help="how many stocks to hold (default 20)"
    )
    parser.add_argument("--invest", type=float, default=0.0, help="new cash to invest (default 0)")
    parser.add_argument("--holdings", help="CSV of what you hold: stock, shares[, amount invested]")
    parser.add_argument(
        "--whole-shares", action="store_true", help="round target shares down to whole shares"
    )
    parser.add_argument(
        "--out", help="where the orders go (CSV; default: results/orders_<theme>_<date>.csv)"
    )
    parser.add_argument(
        "--record",
        nargs="?",
        const="",
        metavar="ACCOUNT",
        help="also record the orders in a live account (live/investor_<theme> by default; the "
        "previous orders' fill report first; docs/live.md)",
    )
    args = parser.parse_args()
    cli.setup_logging(args)
    params = cli.load(args, fractional_shares=not args.whole_shares)
    if args.stocks < 1:
        raise BadInputError("--stocks must be at least 1")
    if not math.isfinite(args.invest) or args.invest < 0:
        raise BadInputError(f"--invest {args.invest}: give an amount of cash, 0 or more")
    panel = load_panel(params.replace(end=pd.Timestamp.max.date()))
    stale = staleness(panel.dates[-1])
    if stale:
        cli.log.warning("%s", stale)
    holdings = read_holdings(args.holdings) if args.holdings else None
    p = plan(panel, params, theme_path(args.theme), args.stocks, args.invest, holdings)
    out = Path(
        args.out
        or Path(params.results_dir) / f"orders_{p.summary['theme']}_{p.summary['date']}.csv"
    )
    # a killed earlier call's half-written orders (no lock here: a minute spares a live writer's)
    remove_abandoned_temporaries(out.parent, prefix="orders_", older_than_s=60)
    atomic_write_csv(out, spreadsheet_safe(p.orders))
    print(show(p))
    print(f"orders written to {out}", file=sys.stderr)
    if args.record is not None:
        folder, new = record.record(p, params, args.record)
        said = "recorded in" if new else "already recorded in"
        print(f"orders of {p.summary['date']} {said} {folder}", file=sys.stderr)
    return 0


def serve_main(argv: list[str]) -> int:
    """`python -m equity_backtest.investor serve`: the investor's page in a browser."""
    parser = cli.parser(
        "Serve the investor's page: pick a theme, enter an amount or upload holdings, get the "
        "orders. Binds to 127.0.0.1 (this computer only) unless --host says otherwise.",
        window=False,
        prog="python -m equity_backtest.investor serve",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8050, help="port (default 8050; 0: any free one)"
    )
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="serve to other computers when --host is not this computer's own address "
        "(the page has no login: anyone who can reach it sees the orders)",
    )
    args = parser.parse_args(argv)
    cli.setup_logging(args)
    from .page import is_loopback, serve  # Flask only when the page is asked for

    if not is_loopback(args.host):
        if not args.allow_network:
            raise BadInputError(
                f"--host {args.host} would serve the page to other computers, and it has no "
                "login: anyone who can reach this one could use it and see the orders. Leave "
                "--host out to keep it on this computer, or add --allow-network if that is meant"
            )
        print(f"warning: serving to the network on {args.host}, with no login", file=sys.stderr)
    serve(cli.load(args), args.host, args.port)
    return 0


if __name__ == "__main__":
    cli.run(main)
