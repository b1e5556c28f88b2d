"""What the heartbeat loop carries from one day to the next (LoopState), and so what a
checkpoint holds; with the day-by-day log's columns."""

from __future__ import annotations

import dataclasses

import numpy as np

from .checkpoint import Checkpoints
from .ledger import Ledger
from .positions import Holdings
from .spec import EngineSpec

RUNTIME_COLUMNS = [
    "date", "value", "cash", "holdings_value", "positions", "rebalance", "orders", "fills",
    "bought", "sold", "commission", "slippage", "dividends", "delisting_proceeds", "stops",
    "interest", "short_fees",
]  # fmt: skip
COL = {name: i - 1 for i, name in enumerate(RUNTIME_COLUMNS)}  # column -> index in the log array
COST_ALARMS = (0.25, 0.5, 0.75, 1.0)  # warn when costs pass these fractions of the starting value


@dataclasses.dataclass
class LoopState:
    """Everything the loop carries from one day to the next, and so what a checkpoint holds:
    the books, orders waiting for tomorrow, stops, the day-by-day log so far, and the alarms."""

    ledger: Ledger
    pending: np.ndarray  # signed shares to trade at the next fill
    stop: np.ndarray  # protective stop per ticker (NaN: none)
    take_profit: np.ndarray  # take-profit target per ticker (NaN: none)
    exit_day: np.ndarray  # heartbeat on whose fill the position is closed (-1: none)
    log_rows: np.ndarray  # one row per heartbeat of the window (RUNTIME_COLUMNS[1:])
    held: Holdings  # shares held at each close of the window
    weight_rows: list[tuple[int, np.ndarray]]
    warnings: list[str]
    alarms: list[float]  # cost alarms not yet raised
    costs_paid: float
    prev_value: float  # equity at the previous close
    starting_value: float

    @classmethod
    def fresh(
        cls, spec: EngineSpec, n: int, n_days: int, shares: np.ndarray | None, mark: np.ndarray
    ) -> LoopState:
        ledger = Ledger(n, spec.starting_cash, shares)
        value = ledger.cash + float(ledger.shares @ mark)
        return cls(
            ledger, np.zeros(n), np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1),
            np.zeros((n_days, len(RUNTIME_COLUMNS) - 1)), Holdings(n), [], [],
            list(COST_ALARMS), 0.0, value, value,
        )  # fmt: skip

    @classmethod
    def resume(cls, saved: dict, spec: EngineSpec, n: int, n_days: int, t0: int) -> LoopState:
        """The state a checkpoint saved before day saved["next_t"]."""
        k = int(saved["next_t"]) - t0
        state = cls.fresh(spec, n, n_days, None, np.zeros(n))
        state.ledger = Ledger.from_state(saved, spec.starting_cash)
        state.pending, state.stop = saved["pending"].copy(), saved["stop"].copy()
        if "take_profit" in saved:  # checkpoints written before take-profits had none
            state.take_profit = saved["take_profit"].copy()
            state.exit_day = saved["exit_day"].astype(np.int64)
        state.log_rows[:k] = saved["log_rows"]
        state.held = Holdings.from_dense(saved["shares_hist"])
        state.weight_rows = list(
            zip(saved["weight_t"].tolist(), saved["weight_targets"], strict=True)
        )
        state.warnings, state.alarms = list(saved["warnings"]), list(saved["alarms"])
        state.costs_paid, state.prev_value = saved["costs_paid"], saved["prev_value"]
        state.starting_value = saved["starting_value"]
        return state

    def save(self, checkpoints: Checkpoints, t: int, t0: int) -> None:
        """Checkpoint the state before day t (every day before it done)."""
        checkpoints.save(self.as_dict(t, t0))

    def as_dict(self, t: int, t0: int) -> dict:
        """The state before day t as flat arrays and plain values (what a checkpoint holds)."""
        k, n = t - t0, len(self.pending)
        return {
            **self.ledger.state(),
            "next_t": t,
            "pending": self.pending,
            "stop": self.stop,
            "take_profit": self.take_profit,
            "exit_day": self.exit_day,
            "log_rows": self.log_rows[:k],
            "shares_hist": self.held.dense(k),
            "weight_t": np.array([w[0] for w in self.weight_rows], dtype=np.int64),
            "weight_targets": np.array([w[1] for w in self.weight_rows]).reshape(-1, n),
            "warnings": self.warnings,
            "alarms": self.alarms,
            "costs_paid": self.costs_paid,
            "prev_value": self.prev_value,
            "starting_value": self.starting_value,
        }
