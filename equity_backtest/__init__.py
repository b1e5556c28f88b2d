"""equity_backtest: survivorship- and look-ahead-free equity backtests, from vendor logs to a tear sheet.

Data flows one way: vendor -> datalog -> datasets -> panel -> view -> weights -> orders -> fills
-> ledger -> archive -> metrics -> report. Each numbered script at the repository root runs one
stage and talks to the next only through files. The package's folders are that flow, bottom up
(docs/architecture.md draws it; tests/test_layout.py holds every import to it):

    infra/       storage, remote stores, locks, fault points, heap: plumbing under every stage
    data/        datalog, datasets (+ quality report), panel (+ cache), vocabulary, calendars, ...
    data/vendors/  simulated (+ realism report), files, sql, wrds, bloomberg, datastream
    engine/      clock, orders, broker, costs, ledger, loop, checkpoint, live state, view, archive,
                 benchmark
    llm/         prompts, backends, answers, decision log, cutoffs, evaluation of decisions
    evaluation/  returns, metrics, tables, plots, contest, overfitting, findings, tear sheet
    run/         one run from settings to archive (runner), sweeps of many (trials), live
                 accounts (live: its brokers, loop and archive for 04)
    research/    factor research, setup studies, the themes' scores       (products)
    investor/    the rebalancing planner and its page                     (products)

and at the top the doors: `config` (settings), `cli` (what the scripts share), `api` (notebooks),
`errors` (exit codes).
"""

from . import _moved

__version__ = "0.1.0"

_moved.install()
