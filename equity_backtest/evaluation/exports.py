"""A run's returns, positions and transactions in pyfolio's formats, for pyfolio or quantstats.

- pyfolio_returns.csv: date (UTC), per-bar return (a Series for `create_full_tear_sheet`);
- pyfolio_positions.feather: one row per day (UTC), one column per ticker (value held) plus
  `cash` (feather: a 20-year, 700-ticker table is millions of numbers);
- pyfolio_transactions.csv: one row per fill: date (UTC), amount (signed shares), price, symbol.

pyfolio's conventions: timestamps are tz-aware UTC, and a symbol's transaction amounts net to its
position, so round trips can be matched. The engine trades raw shares and a split changes the
count between two trades (22 bought, a 4:1 split, 88 sold); the export therefore states every
transaction in the shares of the run's last day: amount x the splits after it, price / the same
factor, value unchanged. The split ratios come from the archive itself (the held shares change
without a trade), so the exports need nothing but the run folder. pyfolio cannot match a sale at a
price of exactly 0 (its sign decides the side), so a worthless delisting (a bankruptcy with no
recovery) is exported at ZERO_PRICE a share: a value below a millionth of a cent.

Load them with:
    returns = pd.read_csv("pyfolio_returns.csv", index_col=0, parse_dates=True)["returns"]
    positions = pd.read_feather("pyfolio_positions.feather").set_index("date")
    transactions = pd.read_csv("pyfolio_transactions.csv", index_col=0, parse_dates=True)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..infra.storage import atomic_write_bytes, atomic_write_csv
from .returns import RunData
from .trading import by_day

UTC_FORMAT = "%Y-%m-%d %H:%M:%S+00:00"


def _utc(index) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(index).tz_localize("UTC")


def split_factors(run: RunData) -> pd.DataFrame:
    """Days x tickers: the split ratio applied to a held position that day (1 where none),
    read from the held shares: shares today = shares yesterday x ratio + shares traded today."""
    days = pd.Index(run.runtime["date"])
    shares = by_day(run.positions, "shares", days)
    traded = (
        run.trades.assign(ticker=run.trades["ticker"].astype(str))
        .pivot_table(index="date", columns="ticker", values="shares", aggfunc="sum")
        .reindex(index=days, columns=shares.columns)
        .fillna(0.0)
    )
    before = shares.shift(1).fillna(0.0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(before != 0, (shares.to_numpy() - traded.to_numpy()) / before, 1.0)
    ratio = np.where(np.isfinite(ratio) & (np.abs(ratio - 1.0) > 1e-9) & (ratio > 0), ratio, 1.0)
    return pd.DataFrame(ratio, index=days, columns=shares.columns)


ZERO_PRICE = 1e-12


def transactions(run: RunData) -> pd.DataFrame:
    """Fills in pyfolio's format, in the shares of the run's last day (see the module doc)."""
    trades = run.trades.assign(symbol=run.trades["ticker"].astype(str))
    ratios = split_factors(run)
    # splits strictly after each day, multiplied up to the end: reverse cumulative product
    after = ratios[::-1].cumprod()[::-1].shift(-1).fillna(1.0)
    rows = pd.Index(ratios.index).get_indexer(trades["date"])
    cols = pd.Index(ratios.columns).get_indexer(trades["symbol"])
    known = (rows >= 0) & (cols >= 0)
    factor = np.ones(len(trades))
    factor[known] = after.to_numpy()[rows[known], cols[known]]
    return pd.DataFrame(
        {
            "amount": trades["shares"].to_numpy() * factor,
            "price": np.maximum(trades["price"].to_numpy() / factor, ZERO_PRICE),
            "symbol": trades["symbol"].to_numpy(),
        },
        index=_utc(trades["date"]).rename("date"),
    )


def write_pyfolio(run: RunData, folder: Path) -> None:
    returns = run.returns.rename("returns").to_frame()
    returns.index = _utc(returns.index).rename("date")
    atomic_write_csv(folder / "pyfolio_returns.csv", returns, index=True, date_format=UTC_FORMAT)
    positions = by_day(run.positions, "value", pd.Index(run.runtime["date"]))
    positions["cash"] = run.runtime["cash"].to_numpy()
    positions.columns = positions.columns.astype(str)
    positions.index = _utc(positions.index).rename("date")
    buffer = io.BytesIO()
    positions.reset_index().to_feather(buffer, compression="zstd")
    atomic_write_bytes(folder / "pyfolio_positions.feather", buffer.getvalue())
    atomic_write_csv(
        folder / "pyfolio_transactions.csv", transactions(run), index=True, date_format=UTC_FORMAT
    )
