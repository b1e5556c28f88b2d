"""The shares a run holds at each close (Holdings, kept as the rows on which they change) and
the daily positions table made from them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..data.panel import Panel


class Holdings:
    """The shares held at each close of the window, kept as the rows on which they change: a
    portfolio holds the same shares for weeks, and a days x tickers copy (315 MB at CRSP size)
    would be written page by page, every day, for a table only some runs ask for."""

    def __init__(self, n_tickers: int):
        self.n = n_tickers
        self.rows: list[int] = []  # the first row of each holding, increasing
        self.shares: list[np.ndarray] = []  # what is held from that row until the next

    def hold(self, k: int, shares: np.ndarray) -> None:
        """From row k on, `shares` (copied) is held; the same bits as the holding before are
        not stored again."""
        while self.rows and self.rows[-1] >= k:  # (a row written again: the later one stands)
            self.rows.pop()
            self.shares.pop()
        if self.shares and np.array_equal(self.shares[-1].view(np.int64), shares.view(np.int64)):
            return
        self.rows.append(k)
        self.shares.append(shares.copy())

    def spans(self, k: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """(first row, end row, shares) of each holding within rows 0..k-1."""
        for j, first in enumerate(self.rows):
            end = self.rows[j + 1] if j + 1 < len(self.rows) else k
            if first >= k:
                break
            yield first, min(end, k), self.shares[j]

    def dense(self, k: int) -> np.ndarray:
        """Rows 0..k-1 as a days x tickers array (zeros before the first holding)."""
        out = np.zeros((k, self.n))
        for first, end, shares in self.spans(k):
            out[first:end] = shares
        return out

    def nonzero(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, ticker, shares) of every non-zero holding in rows 0..k-1, row by row and
        ticker by ticker within a row: np.nonzero's order over dense(k), without building it."""
        rows, cols, held = [np.zeros(0, dtype=np.intp)], [np.zeros(0, dtype=np.intp)], [np.zeros(0)]
        for first, end, shares in self.spans(k):
            (idx,) = np.nonzero(shares)
            days = end - first
            rows.append(np.repeat(np.arange(first, end), len(idx)))
            cols.append(np.tile(idx, days))
            held.append(np.tile(shares[idx], days))
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(held)

    @classmethod
    def from_dense(cls, array: np.ndarray) -> Holdings:
        """The holdings of a days x tickers array (a checkpoint's)."""
        array = np.asarray(array, dtype=float)
        out = cls(array.shape[1])
        for k in range(len(array)):
            out.hold(k, array[k])
        return out


def positions_table(shares: np.ndarray, panel: Panel, t0: int, equity: np.ndarray) -> pd.DataFrame:
    """Daily holdings (long format, non-zero only) with close price, value and weight in equity:
    `shares` holds one row per day from panel day t0 on. A backtest's and a live account's."""
    rows, cols = np.nonzero(shares)
    return _positions_frame((rows, cols, shares[rows, cols]), panel, t0, equity)


def held_positions(
    held: Holdings, n: int, panel: Panel, t0: int, equity: np.ndarray
) -> pd.DataFrame:
    """positions_table of a run's first n rows of Holdings, without a days x tickers array."""
    return _positions_frame(held.nonzero(n), panel, t0, equity)


def _positions_frame(holdings, panel: Panel, t0: int, equity: np.ndarray) -> pd.DataFrame:
    """positions_table of (row, ticker, shares) triples in row order (Holdings.nonzero)."""
    rows, cols, held = holdings
    t = rows + t0
    price = panel.mark[t, cols]
    value = held * price
    return pd.DataFrame(
        {
            "date": panel.dates[t],
            "ticker": pd.Categorical.from_codes(cols, categories=panel.labels),
            "shares": held,
            "price": price,
            "value": value,
            "weight": value / equity[rows],
        },
        copy=False,  # fresh arrays: no need to copy millions of rows into one block
    )
