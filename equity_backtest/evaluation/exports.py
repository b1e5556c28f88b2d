"""A run's returns, positions and transactions in pyfolio's formats, for pyfolio or quantstats.

- pyfolio_returns.csv: date, daily return (a Series for `create_full_tear_sheet(returns, ...)`);
- pyfolio_positions.feather: one row per day, one column per ticker (value held) plus `cash`
  (feather: a 20-year, 700-ticker table is millions of numbers; load it with
  `pd.read_feather(path).set_index("date")`);
- pyfolio_transactions.csv: one row per fill: date, amount (signed shares), price, symbol.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ..storage import atomic_write_bytes, atomic_write_csv
from .returns import RunData
from .trading import by_day


def write_pyfolio(run: RunData, folder: Path) -> None:
    returns = run.returns.rename("returns").rename_axis("date").to_frame()
    atomic_write_csv(folder / "pyfolio_returns.csv", returns, index=True)
    positions = by_day(run.positions, "value", pd.Index(run.runtime["date"]))
    positions["cash"] = run.runtime["cash"].to_numpy()
    positions.columns = positions.columns.astype(str)
    buffer = io.BytesIO()
    positions.rename_axis("date").reset_index().to_feather(buffer, compression="zstd")
    atomic_write_bytes(folder / "pyfolio_positions.feather", buffer.getvalue())
    txn = run.trades.rename(columns={"shares": "amount", "ticker": "symbol"})[
        ["date", "amount", "price", "symbol"]
    ]
    atomic_write_csv(folder / "pyfolio_transactions.csv", txn)
