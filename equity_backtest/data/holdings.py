"""Read a holdings file (E8, P2): what a portfolio owns before the backtest starts, or what an
investor uploads to the page.

CSV with columns `ticker` (or `stock`) and `shares` (fractional allowed); other columns, such as
`amount invested`, are ignored here. The file may come from anyone (the investor's page takes
uploads), so it is read with a fixed shape and bounded work: every row must have the header's
number of fields, at most MAX_ROWS rows and MAX_COLUMNS columns, and reading stops after
TIME_BUDGET seconds. Every problem is reported with the file, row and field: a missing,
duplicated or case-variant column, a row with another number of fields, a share count that is
not a plain number (decimal commas are refused, not guessed), negative (unless short holdings are
allowed) or beyond any company's share count, a ticker listed twice. Lists of offenders name the
first ten and count the rest.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError, some
from . import textio

MAX_ROWS = 100_000  # a holdings file lists at most a few thousand positions
MAX_COLUMNS = 50
TIME_BUDGET = 10.0  # seconds of reading, whatever the file holds
MAX_SHARES = 1e12  # more shares than any listed company has issued
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def read_holdings(path: str | Path, allow_short: bool = False) -> pd.Series:
    """Shares per ticker (index: ticker), zero rows dropped."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"holdings file {path} not found")
    where = f"holdings file {path}"
    header, rows, lines = _rows(textio.read_text(path, where), where)
    columns = _columns(header, where)
    missing = [c for c in ("ticker", "shares") if c not in columns]
    if missing:
        raise BadInputError(
            f"{where}: no column {missing}; it needs 'ticker' (or 'stock') and 'shares' "
            f"(found {some(header)})"
        )
    tickers = [row[columns["ticker"]].strip() for row in rows]
    texts = [row[columns["shares"]].strip() for row in rows]
    shares = np.full(len(rows), np.nan)
    for i, text in enumerate(texts):
        at = f"{where}, row {lines[i]}"
        if not tickers[i]:
            raise BadInputError(f"{at}, field 'ticker': empty")
        if not _NUMBER.fullmatch(text):
            hint = "; write decimals with a point (1000.50)" if "," in text else ""
            raise BadInputError(f"{at}, field 'shares': {text!r} is not a number{hint}")
        shares[i] = float(text)
        if not abs(shares[i]) <= MAX_SHARES:
            raise BadInputError(
                f"{at}, field 'shares': {text} is more than any company has issued "
                f"(at most {MAX_SHARES:,.0f})"
            )
        if shares[i] < 0 and not allow_short:
            raise BadInputError(
                f"{at}, field 'shares': {shares[i]:g} is negative; short positions are not "
                "allowed here (list only what you own)"
            )
    index = pd.Index(tickers, name="ticker", dtype=object)
    dup = index.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise BadInputError(
            f"{where}, row {lines[i]}, field 'ticker': {tickers[i]!r} is listed twice; give one "
            "row per ticker"
        )
    out = pd.Series(shares, index=index, name="shares")
    row_of = dict(zip(tickers, lines, strict=True))
    out = out[out != 0]
    out.attrs.update(path=str(path), rows=row_of)  # so later messages can name the file and row
    return out


def _rows(text: str, where: str) -> tuple[list[str], list[list[str]], list[int]]:
    """The header and the non-blank rows with their line numbers, each row checked to have the
    header's number of fields, within the caps on rows, columns and time."""
    started = time.monotonic()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise BadInputError(f"{where}: the file is empty; the first line names the columns")
        if len(header) > MAX_COLUMNS:
            raise BadInputError(
                f"{where}, row 1: {len(header):,} columns; a holdings file has a few "
                f"(at most {MAX_COLUMNS})"
            )
        rows, lines = [], []
        for row in reader:
            blank = len(row) <= len(header) and not any(cell.strip() for cell in row)
            if not blank:
                if len(row) != len(header):
                    raise BadInputError(
                        f"{where}, row {reader.line_num}: {len(row):,} fields where the header "
                        f"has {len(header)}; every row needs one value per column (quote a "
                        "field that holds a comma)"
                    )
                rows.append(row)
                lines.append(reader.line_num)
                if len(rows) > MAX_ROWS:
                    raise BadInputError(
                        f"{where}: more than {MAX_ROWS:,} rows; a holdings file lists positions"
                    )
            if time.monotonic() - started > TIME_BUDGET:
                raise BadInputError(f"{where}: too slow to read (over {TIME_BUDGET:g} s)")
    except csv.Error as exc:
        raise BadInputError(f"{where}, row {reader.line_num}: not valid CSV ({exc})") from None
    return header, rows, lines


def _columns(header: list[str], where: str) -> dict[str, int]:
    """Column name (stripped, lower case; 'stock' read as 'ticker') -> position. Two columns
    of one name, also when they differ only by case or spaces, and both 'ticker' and 'stock',
    are refused: which one holds the positions cannot be known."""
    seen: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip().lower()
        key = "ticker" if name == "stock" else name
        if key in seen:
            raise BadInputError(
                f"{where}, row 1: columns {header[seen[key]]!r} and {raw!r} name the same "
                "thing; keep one"
            )
        seen.setdefault(key, i)
    return seen


def where_is(holdings: pd.Series, ticker: str) -> str:
    """'holdings file X, row N' for a ticker read by read_holdings (for messages)."""
    path, rows = holdings.attrs.get("path"), holdings.attrs.get("rows", {})
    if path is None:
        return "holdings"
    return f"holdings file {path}, row {rows.get(ticker, '?')}"
