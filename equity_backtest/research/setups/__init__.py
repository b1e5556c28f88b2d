"""Setup studies: trading setups (entry, stop, target, time exit) graded in R against a control group.

    python -m equity_backtest.research.setups --setups examples/setup_momentum_atr.py [--every 5]

A setups file defines `setups(view, params)`: on a study day, from the point-in-time view only,
one row per ticker (index: ticker) with
  direction  +1 long or -1 short;
  stop       the protective stop price (below the entry for a long, above for a short);
  target     the take-profit price, or NaN for none;
  horizon    bars to hold at most (a time exit at that bar's close);
  entry      "next_open" (default: the engine's clock, an order filled at the next open) or
             "close" (this close);
and any further numeric columns: features to filter on (scores, percentiles). A setup whose stop
is on the wrong side of its close is "invalid"; one whose next open is already beyond its stop is
"void" (never entered); one whose horizon runs past the data is "open"; none of them is graded. Which setups are
traded: `GATES = {"feature": minimum, ...}` in the file (every gate met; each can be removed in
turn for the ablation), or a `qualifies(frame, params)` returning a bool Series. All setups are
the control group.

Each setup is walked forward on the panel in prices adjusted to its day's shares (a split inside
the walk does not read as a crash): in each bar, a gap through the stop (or the target) exits at
the open, so a loss can exceed 1R; a bar that reaches both the stop and the target counts as the
loss (the order of the two inside a bar is unknown); otherwise the stop, then the target; at the
horizon, the close. A delisting exits at its value. R = direction x (exit - entry) / |entry -
stop|. Net R subtracts the engine's costs per share in and out, in R:
    cost_R = (entry + exit) x (spread_bps / 2 + slippage_bps) / 1e4 + (entry + exit) x
             commission_rate + 2 x commission_per_share, divided by |entry - stop|
(commission_min and the impact term depend on an order's size, which a setup study has not).
Dividends are not in R (price moves only).

Reported, for the qualified setups and for all setups: count, hit rate, expectancy in R gross and
net, median, profit factor, expectancy without the top 5% of winners, by direction; a threshold
sweep of one feature; the gate ablation under the target exit and the hold-to-horizon exit; a
time-exit sweep (hold N bars with the initial stop); rank ICs of the features with R on
non-overlapping windows; and findings drawn from those numbers. Writes setups_report.json,
setups_report.html and outcomes.csv.

The pieces: `rules` (the rule and each setup's walk), `stats` (grading, sweeps, ICs, findings),
`book` (the qualified setups traded as one portfolio), `report` (the files), `__main__` (the
command). Callers import from here.
"""

from .book import Book, run_book
from .report import report_files
from .rules import SWEEP_CUTOFFS, SetupRule, Tape, walk
from .stats import Study, collect, findings, grade, outcomes_for, run_study, summarise

__all__ = [
    "SWEEP_CUTOFFS",
    "Book",
    "SetupRule",
    "Study",
    "Tape",
    "collect",
    "findings",
    "grade",
    "outcomes_for",
    "report_files",
    "run_book",
    "run_study",
    "summarise",
    "walk",
]
