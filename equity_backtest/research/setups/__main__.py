"""`python -m equity_backtest.research.setups`: a setup study from the command line (the usage
is the package's docstring)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ... import cli
from ...data.panel import load_panel
from ...errors import BadInputError
from . import __doc__ as USAGE
from .book import Book, run_book
from .report import report_files
from .rules import EXITS, SetupRule
from .stats import findings, recommended_exit, run_study, summarise


def main() -> int:
    parser = cli.parser(USAGE, prog="python -m equity_backtest.research.setups")
    parser.add_argument("--setups", required=True, metavar="PATH",
                        help="a file with setups(view, params) and GATES or qualifies()")  # fmt: skip
    parser.add_argument("--every", type=int, default=5, help="bars between study days")
    parser.add_argument("--sweep-feature", help="the feature the threshold sweep varies")
    parser.add_argument("--out", help="output folder (default: results/setups_<file>)")
    parser.add_argument("--book", type=int, metavar="K",
                        help="also replay the qualified setups through the engine as one book "
                        "of at most K positions (its own archive and tear sheet)")  # fmt: skip
    parser.add_argument("--risk-per-trade", type=float, default=0.01,
                        help="book: fraction of equity lost at a position's stop")  # fmt: skip
    parser.add_argument("--max-weight", type=float, default=0.2,
                        help="book: the largest weight of one position")  # fmt: skip
    parser.add_argument("--book-exit", choices=EXITS,
                        help="book: 'target' (the setups' targets) or 'horizon' (hold to the "
                        "horizon with the stop); default: the exit the study recommends")  # fmt: skip
    args = parser.parse_args()
    cli.setup_logging(args)
    if args.every < 1:
        raise BadInputError("--every must be at least 1 bar")
    if args.book is not None:
        Book.check(args.book, args.risk_per_trade, args.max_weight)  # before the study runs
    params = cli.load(args)
    rule = SetupRule.load(args.setups)
    panel = load_panel(params)
    study = run_study(panel, params, rule, args.every)
    report = summarise(study, panel, params, args.sweep_feature)
    out = Path(args.out) if args.out else Path(params.results_dir) / f"setups_{rule.name}"
    if args.book is not None:
        exit_rule = args.book_exit or recommended_exit(report) or "target"
        cli.log.info("the book exits by %s (%s)", exit_rule,
                     "--book-exit" if args.book_exit else "the study's recommendation")  # fmt: skip
        report["book"] = run_book(params, args.setups, out, args.book, args.risk_per_trade,
                                  args.max_weight, args.sweep_feature, exit_rule,
                                  "--book-exit" if args.book_exit else "the study")  # fmt: skip
        report["findings"] = findings(report)
    for line in report["findings"]:
        cli.log.info("%s", line)
    outcomes = pd.concat(
        [study.setups.drop(columns="t"), study.outcomes["target"].drop(columns=["date", "ticker", "direction"])],
        axis=1,
    )  # fmt: skip
    print(report_files(report, outcomes, out))
    return 0


if __name__ == "__main__":
    cli.run(main)
