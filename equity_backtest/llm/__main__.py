"""Log LLM decisions ahead of a backtest: every rebalance day of the window, every index member
with reported statements, asked in large batches (or many requests in flight to a server) and
appended to the decision log. A rerun, or one after a crash, asks only what is not logged yet;
03 with strategies/llm.py then reads the log instead of asking.

    python -m equity_backtest.llm [--parameters parameters.py] [--set llm_model=...] [--start ...]
"""

from __future__ import annotations

import numpy as np

from equity_backtest import cli
from equity_backtest.engine.clock import heartbeat_range, rebalance_days
from equity_backtest.llm import session
from equity_backtest.llm.prompts import build_prompts, load_template
from equity_backtest.panel import load_panel
from equity_backtest.view import View


def main() -> int:
    parser = cli.parser(__doc__, prog="python -m equity_backtest.llm")
    args = parser.parse_args()
    cli.setup_logging(args, cli.stage_log_file("llm_run"))
    params = cli.load(args)
    with (
        cli.trading_stores(params) as params,
        cli.stage_lock(params.llm_decisions_dir, "llm_run"),
    ):
        panel = load_panel(params)
        template = load_template(params.llm_prompt)
        t0, t1 = heartbeat_range(panel.dates, params.start, params.end)
        days = np.flatnonzero(rebalance_days(panel.dates, t0, t1, params.rebalance))
        prompts = []
        for t in days:
            view = View(
                panel,
                int(t),
                np.zeros(len(panel.tickers)),
                params.starting_cash,
                params.lookback_days,
            )
            prompts += build_prompts(view, template, periods=params.llm_periods)
        cli.log.info("%d prompts over %d rebalance days", len(prompts), len(days))
        backend, decisions = session.open_session(params)
        counts = session.ask(backend, prompts, decisions, params, progress=cli.show_progress(args))
        decisions.close()
        cli.log.info(
            "decisions: %d asked, %d already logged (%s)",
            counts["asked"],
            counts["already_logged"],
            params.llm_decisions_dir,
        )
    return 0


if __name__ == "__main__":
    cli.run(main)
