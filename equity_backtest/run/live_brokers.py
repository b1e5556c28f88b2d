"""The brokers of a live account behind one small interface (E12): `place` a journaled
decision's orders, and report the `fills` of the orders journaled on a given day (None: the
engine fills them itself, as in a backtest).

    paper   fills by the engine's own broker and cost model (at the next open, or at an
            intraday heartbeat's price); nothing to place, nothing reported
    file    orders/<date>.csv for a person to place; the broker's report read back
            (run.live_file_broker)
    alpaca  Alpaca's trading API through alpaca-py, each order sent once by its idempotency key
            (run.live_alpaca)

The file and Alpaca brokers place market orders at the next open, so they take target weights
only: `takes_exits` is False for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pandas as pd

from ..config import Parameters
from ..errors import BadInputError
from . import live_alpaca
from . import live_file_broker as file_broker


class Broker(Protocol):
    name: str
    takes_exits: bool

    def place(self, record: dict) -> None: ...

    def fills(self, decided: dict) -> pd.DataFrame | None: ...


class Paper:
    name, takes_exits = "paper", True

    def place(self, record: dict) -> None:
        return None

    def fills(self, decided: dict) -> pd.DataFrame | None:
        return None


class File:
    name, takes_exits = "file", False

    def __init__(self, params: Parameters, folder: Path):
        self.folder, self.columns = folder, params.live_fill_columns

    def place(self, record: dict) -> None:
        orders = record.get("orders")
        if orders:
            reference = {o["ticker"]: o["reference_price"] for o in orders}
            file_broker.write_orders(self.folder, record["date"], orders, reference)

    def fills(self, decided: dict) -> pd.DataFrame:
        orders = decided.get("orders", [])
        return file_broker.read_fills(self.folder, decided["date"], self.columns, orders)


class Alpaca:
    name, takes_exits = "alpaca", False

    def __init__(self, params: Parameters):
        self.trading = live_alpaca.client(params)

    def place(self, record: dict) -> None:
        if record.get("orders"):
            live_alpaca.send(self.trading, record["orders"])

    def fills(self, decided: dict) -> pd.DataFrame:
        return live_alpaca.report(self.trading, decided["date"], decided.get("orders", []))


NAMES = ("paper", "file", "alpaca")


def make(params: Parameters, folder: Path) -> Broker:
    """The account's broker (live_broker); an unknown name is refused with the choices."""
    if params.live_broker == "paper":
        return Paper()
    if params.live_broker == "file":
        return File(params, folder)
    if params.live_broker == "alpaca":
        return Alpaca(params)
    raise BadInputError(f"live_broker = {params.live_broker!r}: choose one of {NAMES}")
