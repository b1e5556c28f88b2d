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

    # --- corporate actions, applied at the start of their day -----------------------------------
    def split(self, t: int, idx: np.ndarray, ratio: np.ndarray) -> None:
        """More shares, same value: the price series is raw, so it drops by the same ratio."""
        self.shares[idx] *= ratio

    def dividend(self, t: int, idx: np.ndarray, per_share: np.ndarray) -> float:
        """Cash on the ex-date for shares held at the previous close."""
        amount = self.shares[idx] * per_share
        paid = amount != 0
        if paid.any():
            self.cash += float(amount[paid].sum())
            self._cash.append((t, "dividend", idx[paid], amount[paid]))
        return float(amount[paid].sum())

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
        done = fills.shares != 0
        if not done.any():
            return
        order = np.argsort(fills.shares[done] > 0, kind="stable")  # sells settle before buys
        i, q, p = fills.idx[done][order], fills.shares[done][order], fills.price[done][order]
        c, s = fills.commission[done][order], fills.slippage[done][order]
        self.shares[i] += q
        self.cash += float(-(q * p).sum() - c.sum())
        self._trades.append((t, i, q, p, c, s, reason))
        sell = q < 0
        self._cash.append((t, "sale", i[sell], -q[sell] * p[sell]))
        self._cash.append((t, "commission", i[sell], -c[sell]))
        self._cash.append((t, "purchase", i[~sell], -q[~sell] * p[~sell]))
        self._cash.append((t, "commission", i[~sell], -c[~sell]))

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
