"""The book: the qualified setups replayed through the engine as one portfolio of at most K
positions sized by risk, with its own archive and tear sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ... import cli
from ...config import Parameters
from ...errors import BadInputError
from ...infra.storage import atomic_write_text
from .rules import EXITS, SetupRule


class Book:
    """The qualified setups as one portfolio, for the engine: compute_weights called every bar.

    Each bar, positions still held keep their weight, stop, target and time exit; free slots (at
    most `positions` open, one per ticker) go to today's qualified setups, best `rank_by` first,
    each sized to lose `risk_per_trade` of equity at its stop (weight = risk_per_trade x close /
    |close - stop|), capped at `max_weight`, while the weights sum to at most 1 - cash_buffer.
    The engine then fills them at its next fill with its costs and volume cap, and exits them at
    the stop, at the target (take-profit) or after `horizon` bars (time exit). Short setups need
    allow_short. The book counts bars itself, so its runs write no checkpoint."""

    def __init__(self, setups_file: str | Path, positions: int = 10,
                 risk_per_trade: float = 0.01, max_weight: float = 0.2,
                 rank_by: str | None = None, exit_rule: str = "target"):  # fmt: skip
        self.check(positions, risk_per_trade, max_weight)
        if exit_rule not in EXITS:
            raise BadInputError(f"the book's exit {exit_rule!r}: use one of {', '.join(EXITS)}")
        self.exit_rule = exit_rule  # "horizon": targets are ignored (stop or time exit)
        self.rule = SetupRule.load(setups_file)
        self.positions, self.risk, self.cap = positions, risk_per_trade, max_weight
        self.rank_by = rank_by or (next(iter(self.rule.gates)) if self.rule.gates else None)
        self.bar = -1
        self.open: dict[str, dict] = {}  # ticker -> stop, target, exit bar

    @staticmethod
    def check(positions: int, risk_per_trade: float, max_weight: float) -> None:
        if not (positions >= 1 and 0 < risk_per_trade <= 1 and 0 < max_weight <= 1):
            raise BadInputError(
                f"the book needs --book >= 1 (got {positions}), --risk-per-trade in (0, 1] (got "
                f"{risk_per_trade:g}) and --max-weight in (0, 1] (got {max_weight:g})"
            )

    def weights(self, view, params) -> pd.DataFrame:
        self.bar += 1
        held = view.weights
        self.open = {t: e for t, e in self.open.items() if t in held.index}
        rows = {
            t: {"weight": float(held[t]), "stop": e["stop"], "target": e["target"],
                "exit_after": max(1, e["exit_bar"] - self.bar)}  # a partial fill: again
            for t, e in self.open.items()
        }  # fmt: skip
        frame = self.rule.setups_on(view, params)
        if len(frame):
            frame = frame[self.rule.qualified(frame, params)]
            if not params.allow_short:
                frame = frame[frame["direction"] > 0]
            if self.rank_by and self.rank_by in frame:
                frame = frame.sort_values(self.rank_by, ascending=False, kind="stable")
            close = view.market(view.universe)["close"]
            budget = 1.0 - params.cash_buffer - float(np.abs(held).sum())
            for setup in frame.itertuples(index=False):
                if len(rows) >= self.positions:
                    break
                if setup.ticker in rows or setup.ticker not in close.index:
                    continue
                price = float(close[setup.ticker])
                risk = setup.direction * (price - setup.stop)
                if not (np.isfinite(price) and risk > 0):
                    continue
                weight = min(self.risk * price / risk, self.cap)
                if weight > budget:
                    break
                budget -= weight
                target = float(setup.target) if self.exit_rule == "target" else float("nan")
                self.open[setup.ticker] = {
                    "stop": float(setup.stop), "target": target,
                    "exit_bar": self.bar + 1 + int(setup.horizon),  # held `horizon` bars
                }  # fmt: skip
                rows[setup.ticker] = {
                    "weight": setup.direction * weight, "stop": float(setup.stop),
                    "target": target, "exit_after": int(setup.horizon) + 1,
                }  # fmt: skip
        if not rows:
            return pd.DataFrame(columns=["weight", "stop", "target", "exit_after"])
        return pd.DataFrame.from_dict(rows, orient="index")


BOOK_ALGORITHM = """\"\"\"The book of {name}'s qualified setups (written by python -m equity_backtest.research.setups
--book): at most {positions} positions, {risk:g} of equity at risk per trade, {cap:g} at most per
position, ranked by {rank}, exits: {exit_rule}.\"\"\"

from equity_backtest.research.setups import Book

BOOK = Book({path!r}, positions={positions}, risk_per_trade={risk!r}, max_weight={cap!r},
            rank_by={rank!r}, exit_rule={exit_rule!r})


def compute_weights(view, params):
    return BOOK.weights(view, params)
"""


def run_book(params: Parameters, setups_file: str | Path, out: Path, positions: int,
             risk: float, cap: float, rank_by: str | None, exit_rule: str = "target",
             chosen_by: str = "the study"):  # fmt: skip
    """Replay the qualified setups through the engine (03 and 04 as for any algorithm) with the
    given exit (the study's recommendation unless the user chose): the run's archive and tear
    sheet, and its result against the index."""
    from ...evaluation.returns import load_run
    from ...evaluation.tearsheet import evaluate
    from ...run.runner import run_single

    book = Book(setups_file, positions, risk, cap, rank_by, exit_rule)  # checks them first
    out.mkdir(parents=True, exist_ok=True)
    algorithm = out / "book_algorithm.py"
    atomic_write_text(
        algorithm,
        BOOK_ALGORITHM.format(
            name=book.rule.name, path=str(Path(setups_file).resolve()), positions=positions,
            risk=risk, cap=cap, rank=book.rank_by, exit_rule=exit_rule,
        ),
    )  # fmt: skip
    book_params = params.replace(algorithm=str(algorithm), rebalance="daily", checkpoint_days=0)
    with cli.trading_stores(book_params) as local:  # 03, then 04, as for any algorithm
        folder = run_single(local, Path("parameters.py")).run_dir
    with cli.stage_lock(folder, "04_evaluate"):
        metrics = evaluate(folder)
    mine, index = metrics["portfolio"], metrics.get("benchmark") or {}
    return {
        "run_folder": str(folder),
        "positions": positions, "risk_per_trade": risk, "max_weight": cap, "rank_by": book.rank_by,
        "exit": exit_rule, "exit_chosen_by": chosen_by,
        "annual_return": mine.get("annual_return"), "sharpe_ratio": mine.get("sharpe_ratio"),
        "max_drawdown": mine.get("max_drawdown"),
        "index_annual_return": index.get("annual_return"),
        "index_sharpe_ratio": index.get("sharpe_ratio"),
        "exits": load_run(folder).trades["reason"].value_counts().to_dict(),
    }  # fmt: skip
