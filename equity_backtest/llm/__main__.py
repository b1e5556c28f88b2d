"""Log LLM decisions ahead of a backtest: every rebalance day of the window, every index member
with reported statements, asked in large batches (or many requests in flight to a server) and
appended to the decision log. A rerun, or one after a crash, asks only what is not logged yet;
03 with strategies/llm.py then reads the log instead of asking.

    python -m equity_backtest.llm [--parameters parameters.py] [--set llm_model=...] [--start ...]
    python -m equity_backtest.llm --dry-run --limit 3          # print prompts and token counts
    python -m equity_backtest.llm --tickers AAA,BBB --dates 2012-03-30,2012-06-29 --limit 30
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from equity_backtest import cli
from equity_backtest.data.panel import load_panel
from equity_backtest.engine.clock import heartbeat_range, rebalance_days
from equity_backtest.engine.view import View
from equity_backtest.errors import BadInputError
from equity_backtest.llm import session
from equity_backtest.llm.prompts import Prompt, build_prompts, load_template


def _list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def decision_days(panel, params, dates: list[str]) -> np.ndarray:
    """The rebalance days of the window, or the trading days on or before the given dates."""
    if not dates:
        t0, t1 = heartbeat_range(panel.dates, params.start, params.end)
        return np.flatnonzero(rebalance_days(panel.dates, t0, t1, params.rebalance))
    out = []
    for text in dates:
        try:
            t = panel.day(pd.Timestamp(text))
        except ValueError:
            raise BadInputError(f"--dates: {text!r} is not a date (YYYY-MM-DD)") from None
        if t < 0:
            raise BadInputError(f"--dates: {text} is before the data ({panel.dates[0]:%Y-%m-%d})")
        out.append(t)
    return np.unique(out)


CHARS_PER_TOKEN = 2  # statement tables are digits and spaces: about 2 characters a token


def token_counter(params):
    """Token counts with the model's own tokenizer (from its GGUF file when llm_gguf_file names
    one) when it can be read locally, else an estimate (and the output says which and why)."""
    try:
        from transformers import AutoTokenizer

        kwargs = {"local_files_only": True}
        if params.llm_gguf_file:
            kwargs["gguf_file"] = params.llm_gguf_file
        tokenizer = AutoTokenizer.from_pretrained(params.llm_model, **kwargs)
        return "tokens", lambda p: len(
            tokenizer.apply_chat_template(p.messages(), add_generation_prompt=True, tokenize=True)
        )
    except Exception as exc:  # no transformers, a server model, or no chat template: estimate
        cli.log.info(
            "no local tokenizer for %s (%s): token counts are estimated", params.llm_model, exc
        )
        return (
            f"tokens (estimated: {CHARS_PER_TOKEN} characters each)",
            lambda p: (len(p.system) + len(p.user)) // CHARS_PER_TOKEN,
        )


def show(prompts: list[Prompt], params) -> None:
    label, count = token_counter(params)
    sizes = [count(p) for p in prompts]
    for p, n in zip(prompts, sizes, strict=True):
        print(f"===== {p.ticker} as of {p.as_of} ({p.version}, {n} {label}) =====")
        print(f"[system]\n{p.system}\n[user]\n{p.user}\n")
    if sizes:
        print(
            f"{len(prompts)} prompts; {label}: mean {np.mean(sizes):.0f}, max {max(sizes)}; "
            f"up to {params.llm_max_new_tokens} new tokens each"
        )


def main() -> int:
    parser = cli.parser(__doc__, prog="python -m equity_backtest.llm")
    parser.add_argument("--tickers", help="only these tickers (comma-separated)")
    parser.add_argument("--dates", help="only these dates (comma-separated, YYYY-MM-DD)")
    parser.add_argument("--limit", type=int, help="at most this many prompts")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the rendered prompts and their token counts; ask nothing, log nothing",
    )
    args = parser.parse_args()
    cli.setup_logging(args, cli.stage_log_file("llm_run"))
    params = cli.load(args)
    if args.limit is not None and args.limit < 1:
        raise BadInputError("--limit must be at least 1")
    with cli.trading_stores(params) as params:
        panel = load_panel(params)
        template = load_template(params.llm_prompt)
        tickers = _list(args.tickers) or None
        unknown = [t for t in tickers or [] if t not in set(panel.tickers)]
        if unknown:
            raise BadInputError(f"--tickers: {unknown} are not in the data of {params.index}")
        days = decision_days(panel, params, _list(args.dates))
        prompts: list[Prompt] = []
        for t in days:
            view = View(
                panel,
                int(t),
                np.zeros(len(panel.tickers)),
                params.starting_cash,
                params.lookback_days,
            )
            chosen = None if tickers is None else [x for x in tickers if x in set(view.universe)]
            prompts += build_prompts(
                view, template, chosen, params.llm_periods, params.llm_statement_items
            )
        prompts = prompts[: args.limit] if args.limit else prompts
        cli.log.info("%d prompts over %d days", len(prompts), len(days))
        if args.dry_run:
            show(prompts, params)
            return 0
        with cli.stage_lock(params.llm_decisions_dir, "llm_run"):
            backend, decisions = session.open_session(params)
            counts = session.ask(
                backend, prompts, decisions, params, progress=cli.show_progress(args)
            )
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
