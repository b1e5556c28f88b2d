"""Read a holdings file (E8): what a portfolio owns before the backtest starts.

CSV with columns `ticker` (or `stock`) and `shares` (fractional allowed); other columns, such as
`amount invested`, are ignored here. Every
problem is reported with the file, row and field: a missing column, a non-numeric or negative
share count, a ticker listed twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError
from . import textio


def read_holdings(path: str | Path, allow_short: bool = False) -> pd.Series:
    """Shares per ticker (index: ticker), zero rows dropped."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"holdings file {path} not found")
    where = f"holdings file {path}"
    frame = textio.read_csv_text(
        textio.read_text(path, where), where, dtype=str, keep_default_na=False,
        skip_blank_lines=False,
    )  # fmt: skip
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame = frame.fillna("")
    lines = np.arange(2, len(frame) + 2)  # as an editor counts them, blank lines included
    blank = (frame.apply(lambda col: col.str.strip()) == "").all(axis=1).to_numpy()
    frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    if "ticker" not in frame.columns and "stock" in frame.columns:
        frame = frame.rename(columns={"stock": "ticker"})
    missing = [c for c in ("ticker", "shares") if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"holdings file {path}: no column {missing}; it needs 'ticker' (or 'stock') and "
            f"'shares' (found {list(frame.columns)})"
        )
    tickers = frame["ticker"].str.strip()
    shares = pd.to_numeric(frame["shares"].str.strip(), errors="coerce")
    for i in range(len(frame)):
        where = f"holdings file {path}, row {lines[i]}"
        if not tickers.iloc[i]:
            raise BadInputError(f"{where}, field 'ticker': empty")
        if not np.isfinite(shares.iloc[i]):
            raise BadInputError(
                f"{where}, field 'shares': {frame['shares'].iloc[i]!r} is not a number"
            )
        if shares.iloc[i] < 0 and not allow_short:
            raise BadInputError(
                f"{where}, field 'shares': {shares.iloc[i]:g} is negative; short "
                "holdings need allow_short = True"
            )
    dup = tickers.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise BadInputError(
            f"holdings file {path}, row {lines[i]}, field 'ticker': {tickers.iloc[i]!r} "
            "is listed twice; give one row per ticker"
        )
    out = pd.Series(
        shares.to_numpy(dtype=float), index=pd.Index(tickers, name="ticker"), name="shares"
    )
    rows = dict(zip(tickers, lines.tolist(), strict=True))
    out = out[out != 0]
    out.attrs.update(path=str(path), rows=rows)  # so later messages can name the file and row
    return out


def where_is(holdings: pd.Series, ticker: str) -> str:
    """'holdings file X, row N' for a ticker read by read_holdings (for messages)."""
    path, rows = holdings.attrs.get("path"), holdings.attrs.get("rows", {})
    if path is None:
        return "holdings"
    return f"holdings file {path}, row {rows.get(ticker, '?')}"
