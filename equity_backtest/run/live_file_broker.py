"""The `file` broker of a live account (E12): a person places the orders, the ledger holds what
the broker reports.

After a rebalance bar, the account's orders are written to `orders/<date>.csv` (key, ticker,
side, shares, reference price: the decision's close), once: an existing file is never rewritten.
Before the next bar's fills, the broker's fill report for them must be in `fills/<date>.csv`
(the decision's date), read through `live_fill_columns` (our field -> the report's column:
ticker, shares, price, commission, and optionally side: buy/sell words that sign the shares, and
key: the order's idempotency key). Without it the account waits: 03 stops with exit code 2
saying where to put it, and nothing of the next bar is done. Each report row becomes a fill at
its price and commission (no cost model: what happened), and each order's implementation
shortfall is journaled: filled shares x (fill price - reference price) + commission, and the
shares left unfilled.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine.broker import Fills
from ..errors import BadInputError, WaitingError
from ..infra.storage import atomic_write_text

ORDERS, FILLS = "orders", "fills"
SIDES = {"buy": 1.0, "b": 1.0, "bot": 1.0, "sell": -1.0, "s": -1.0, "sld": -1.0}
DEFAULT_COLUMNS = {
    "ticker": "ticker", "shares": "shares", "price": "price", "commission": "commission",
}  # fmt: skip


def write_orders(folder: Path, date: str, orders: list[dict], reference: dict) -> Path | None:
    """orders/<date>.csv for a person to place; None when there is nothing to place."""
    if not orders:
        return None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "ticker", "side", "shares", "reference_price", "decided"])
    for order in orders:
        side = "buy" if order["shares"] > 0 else "sell"
        writer.writerow([order["key"], order["ticker"], side, repr(abs(order["shares"])),
                         repr(reference[order["ticker"]]), date])  # fmt: skip
    path = folder / ORDERS / f"{date}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    (folder / FILLS).mkdir(exist_ok=True)  # (where the broker's report goes)
    if path.exists():
        if path.read_text() != buf.getvalue():
            raise BadInputError(f"{path} exists with other orders: it is never rewritten; "
                                "restore it (the journal holds the orders)")  # fmt: skip
        return path
    atomic_write_text(path, buf.getvalue())
    return path


def read_fills(folder: Path, date: str, columns: dict, orders: list[dict]) -> pd.DataFrame:
    """The broker's report of the orders decided on `date`: ticker, shares (signed), price,
    commission; each row checked, a bad one named with its row and field."""
    path = folder / FILLS / f"{date}.csv"
    if not path.is_file():
        raise WaitingError(
            f"the live account waits for the fill report of the orders decided on {date} "
            f"({folder / ORDERS / (date + '.csv')}): put the broker's report in {path} "
            "(columns as live_fill_columns names them; an empty report for no fills), then "
            "run 03_trade.py --live again"
        )
    mapping = {**DEFAULT_COLUMNS, **columns}
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{path}: not a readable CSV ({exc})") from None
    known = {o["ticker"]: o for o in orders}
    by_key = {o["key"]: o for o in orders}
    out = []
    for number, row in enumerate(rows, 2):
        missing = [c for f, c in mapping.items() if c and c not in row]
        if missing:
            raise BadInputError(f"{path} row {number}: no column {missing[0]!r} "
                                "(set live_fill_columns to the report's names)")  # fmt: skip
        ticker = row[mapping["ticker"]].strip()
        if mapping.get("key"):
            order = by_key.get(row[mapping["key"]].strip())
            ticker = order["ticker"] if order else ticker
        if ticker not in known:
            raise BadInputError(f"{path} row {number}: {ticker!r} was not ordered on {date}; "
                                "a fill of something not ordered is not booked")  # fmt: skip
        shares, price, fee = (_number(path, number, mapping[f], row[mapping[f]])
                              for f in ("shares", "price", "commission"))  # fmt: skip
        if mapping.get("side"):
            side = SIDES.get(row[mapping["side"]].strip().lower())
            if side is None:
                raise BadInputError(f"{path} row {number}, {mapping['side']}: "
                                    f"{row[mapping['side']]!r} is neither buy nor sell")  # fmt: skip
            shares = side * abs(shares)
        if price <= 0 or fee < 0 or shares == 0:
            raise BadInputError(f"{path} row {number}: a fill needs shares, a price above 0 and "
                                "a commission of 0 or more")  # fmt: skip
        out.append({"ticker": ticker, "shares": shares, "price": price, "commission": fee})
    return pd.DataFrame(out, columns=["ticker", "shares", "price", "commission"])


def _number(path: Path, row: int, column: str, text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadInputError(f"{path} row {row}, {column}: {text!r} is not a number")
    return value


def as_fills(report: pd.DataFrame, labels: pd.Index) -> Fills:
    """The report's rows as the engine's Fills (several rows of a ticker: one fill at their
    average price); the fill price is also the reference, so costs are the commissions."""
    if report.empty:
        e = np.zeros(0)
        return Fills(np.zeros(0, dtype=np.int64), e, e, e, e, e)
    grouped = report.assign(value=report["shares"] * report["price"]).groupby("ticker", sort=True)
    sums = grouped[["shares", "value", "commission"]].sum()
    price = sums["value"] / sums["shares"]
    idx = labels.get_indexer(sums.index)
    zeros = np.zeros(len(sums))
    return Fills(idx, sums["shares"].to_numpy(), price.to_numpy(), price.to_numpy(),
                 sums["commission"].to_numpy(), zeros)  # fmt: skip


def shortfall(orders: list[dict], report: pd.DataFrame, reference: dict) -> list[dict]:
    """Per order: intended and filled shares, reference and average fill price, commission,
    and the implementation shortfall (filled x (fill - reference) + commission)."""
    out = []
    for order in orders:
        rows = report[report["ticker"] == order["ticker"]]
        filled = float(rows["shares"].sum())
        avg = float((rows["shares"] * rows["price"]).sum() / filled) if filled else float("nan")
        fee = float(rows["commission"].sum())
        ref = reference[order["ticker"]]
        cost = filled * (avg - ref) + fee if filled else fee
        out.append({"key": order["key"], "ticker": order["ticker"], "intended": order["shares"],
                    "filled": filled, "unfilled": order["shares"] - filled,
                    "reference_price": ref, "fill_price": avg if filled else None,
                    "commission": fee, "shortfall": cost})  # fmt: skip
    return out
