"""The books (E6, E7): cash and share positions, changed only by fills and corporate actions.

Every change of cash is recorded as a ledger row (kind, ticker, amount), so the cash balance at
any moment can be rebuilt from the rows; every change of shares by a trade is a trade row. The
records are kept in lists of small arrays and turned into tables once, at the end of the run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .broker import Fills


class Ledger:
    def __init__(self, n_tickers: int, cash: float, shares: np.ndarray | None = None):
        self.cash = float(cash)
        self.starting_cash = float(cash)
        self.shares = np.zeros(n_tickers) if shares is None else shares.astype(float).copy()
        self._trades: list[tuple] = []  # (t, idx, shares, price, commission, slippage, reason)
        self._cash: list[tuple] = []  # (t, kind, idx, amounts)

    # --- checkpoints: the books as flat arrays (no pickle), and back ----------------------------
    def state(self) -> dict[str, np.ndarray]:
        tr, ca = self._trades, self._cash
        return {
            "ledger_cash": np.array([self.cash]),
            "ledger_shares": self.shares.copy(),
            "trade_t": np.array([r[0] for r in tr], dtype=np.int64),
            "trade_n": np.array([len(r[1]) for r in tr], dtype=np.int64),
            "trade_reason": np.array([r[6] for r in tr], dtype=str),
            **{
                f"trade_{name}": _concat([r[k] for r in tr])
                for k, name in enumerate(("idx", "shares", "price", "commission", "slippage"), 1)
            },
            "cash_t": np.array([r[0] for r in ca], dtype=np.int64),
            "cash_kind": np.array([r[1] for r in ca], dtype=str),
            "cash_n": np.array([len(r[2]) for r in ca], dtype=np.int64),
            "cash_idx": _concat([r[2] for r in ca]),
            "cash_amount": _concat([r[3] for r in ca]),
        }

    @classmethod
    def from_state(cls, state: dict, starting_cash: float) -> Ledger:
        ledger = cls(len(state["ledger_shares"]), starting_cash, state["ledger_shares"])
        ledger.cash = float(state["ledger_cash"][0])
        cuts = np.cumsum(state["trade_n"])[:-1]
        cols = [
            np.split(state[f"trade_{n}"], cuts)
            for n in ("idx", "shares", "price", "commission", "slippage")
        ]
        cols[0] = [c.astype(np.int64) for c in cols[0]]
        ledger._trades = [
            (int(t), *(col[k] for col in cols), str(reason))
            for k, (t, reason) in enumerate(
                zip(state["trade_t"], state["trade_reason"], strict=True)
            )
        ]
        cuts = np.cumsum(state["cash_n"])[:-1]
        idx = np.split(state["cash_idx"].astype(np.int64), cuts)
        amount = np.split(state["cash_amount"], cuts)
        ledger._cash = [
            (int(t), str(kind), idx[k], amount[k])
            for k, (t, kind) in enumerate(zip(state["cash_t"], state["cash_kind"], strict=True))
        ]
        return ledger

    def day(self, t: int) -> tuple[list[tuple], list[tuple]]:
        """Day t's trades (idx, shares, price, commission, slippage, reason) and cash rows
        (kind, idx, amounts), as booked: what a live account journals for the day."""
        trades = [r[1:] for r in self._trades if r[0] == t]
        cash = [r[1:] for r in self._cash if r[0] == t]
        return trades, cash

    def forget_before(self, t: int) -> None:
        """Drop the rows of the days before t (a live account has journaled them): its books
        stay as small as one day's, however long it trades."""
        self._trades = [r for r in self._trades if r[0] >= t]
        self._cash = [r for r in self._cash if r[0] >= t]

    # --- corporate actions, applied at the start of their day -----------------------------------
    def split(self, t: int, idx: np.ndarray, ratio: np.ndarray) -> None:
        """More shares, same value: the price series is raw, so it drops by the same ratio."""
        self.shares[idx] *= ratio

    def dividend(self, t: int, idx: np.ndarray, per_share: np.ndarray) -> float:
        """Cash on the ex-date for shares held at the previous close."""
        amount = self.shares[idx] * per_share
        paid = np.count_nonzero(amount)  # (one pass: most days pay all or none of them)
        if not paid:
            return 0.0
        if paid < len(amount):
            paid = amount != 0
            idx, amount = idx[paid], amount[paid]
        total = float(amount.sum())
        self.cash += total
        self._cash.append((t, "dividend", idx, amount))
        return total

    def delist(self, t: int, idx: np.ndarray, value: np.ndarray) -> float:
        """Close positions at the delisting value (takeover price, bankruptcy recovery, last price)."""
        held = self.shares[idx] != 0
        if not held.any():
            return 0.0
        i, v, q = idx[held], value[held], self.shares[idx][held]
        self.cash += float((q * v).sum())
        self._trades.append((t, i, -q, v, np.zeros(len(i)), np.zeros(len(i)), "delisting"))
        self._cash.append((t, "delisting", i, q * v))
        self.shares[i] = 0.0
        return float((q * v).sum())

    # --- trades ---------------------------------------------------------------------------------
    def cash_flow(self, t: int, kind: str, amount: float) -> float:
        """A cash movement not tied to a ticker (interest, fees); returns the amount."""
        self.cash += amount
        self._cash.append((t, kind, np.array([-1]), np.array([amount])))
        return amount

    def apply(self, t: int, fills: Fills, reason: str = "rebalance") -> None:
        done = np.flatnonzero(fills.shares)
        if not len(done):
            return
        done = done[np.argsort(fills.shares[done] > 0, kind="stable")]  # sells settle before buys
        i, q, p = fills.idx[done], fills.shares[done], fills.price[done]
        c, s = fills.commission[done], fills.slippage[done]
        self.shares[i] += q
        self.cash += float(-(q * p).sum() - c.sum())
        self._trades.append((t, i, q, p, c, s, reason))
        sell = q < 0
        buy = ~sell
        self._cash.append((t, "sale", i[sell], -q[sell] * p[sell]))
        self._cash.append((t, "commission", i[sell], -c[sell]))
        self._cash.append((t, "purchase", i[buy], -q[buy] * p[buy]))
        self._cash.append((t, "commission", i[buy], -c[buy]))

    # --- tables ---------------------------------------------------------------------------------
    def trades_table(self, dates: pd.DatetimeIndex, tickers: np.ndarray) -> pd.DataFrame:
        cols = ["date", "ticker", "shares", "price", "value", "commission", "slippage", "reason"]
        if not self._trades:
            return pd.DataFrame(columns=cols)
        n = [len(rec[1]) for rec in self._trades]
        t, i, q, p, c, s = (
            np.concatenate([np.broadcast_to(rec[k], len(rec[1])) for rec in self._trades])
            for k in range(6)
        )
        reason = np.repeat([rec[6] for rec in self._trades], n)
        return pd.DataFrame(
            {
                "date": dates[t],
                "ticker": tickers[i],
                "shares": q,
                "price": p,
                "value": q * p,
                "commission": c,
                "slippage": s,
                "reason": reason,
            }
        )[cols]

    def cash_table(self, dates: pd.DatetimeIndex, tickers: np.ndarray) -> pd.DataFrame:
        cols = ["date", "kind", "ticker", "amount", "balance"]
        if not self._cash:
            return pd.DataFrame(columns=cols)
        n = [len(rec[2]) for rec in self._cash]
        t = np.repeat([rec[0] for rec in self._cash], n)
        kind = np.repeat([rec[1] for rec in self._cash], n)
        i = np.concatenate([rec[2] for rec in self._cash])
        amount = np.concatenate([rec[3] for rec in self._cash])
        keep = amount != 0
        named = np.append(tickers, "")  # index -1: a flow not tied to a ticker
        df = pd.DataFrame(
            {
                "date": dates[t[keep]],
                "kind": kind[keep],
                "ticker": named[i[keep]],
                "amount": amount[keep],
            }
        )
        df["balance"] = self.starting_cash + df["amount"].cumsum()
        return df[cols]


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=float) for p in parts]) if parts else np.zeros(0)
