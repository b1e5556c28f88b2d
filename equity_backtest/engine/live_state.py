"""A live account's loop state between invocations (E12): the checkpoint's arrays, keyed by
ticker label and date instead of panel positions, so tomorrow's panel (new days, new tickers)
takes them up where today's left off.

A checkpoint (LoopState.save) indexes tickers by their column in one panel and days by their
row; each day's data makes a new dataset and so a new panel. `portable` turns the saved state
into labels and dates, `placed` back into the positions of another panel, refusing one whose
history differs from the days the account traded (a day gone or added in the middle, a ticker
gone). Only the last day's runtime row and holdings are kept (the journal has the days before,
and the ledger is cut to the last day's rows after each journal line), so saving after every
bar costs the same in the account's first year and its tenth. Stored as numpy without pickle
(numbers and strings only), written atomically.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from ..errors import BadInputError
from ..infra.storage import atomic_write_bytes

# the state's arrays by what their values or axes are
_PER_TICKER = ("ledger_shares", "pending", "stop", "take_profit", "exit_day")
_TICKER_INDEX = ("trade_idx", "cash_idx")  # values are ticker positions
_DAY_INDEX = ("trade_t", "cash_t", "weight_t")  # values are day positions (kept from t0)
_TICKER_COLUMNS = ("shares_hist", "weight_targets")  # one column per ticker


def portable(state: dict, labels: pd.Index, dates: pd.DatetimeIndex, t0: int) -> dict:
    """LoopState.save's dict (before day state["next_t"]) -> ticker labels, the account's dates,
    and days counted from the account's first (a time exit may lie past the data's end)."""
    out = dict(state)
    # the history of the days before the last is in the journal: only the last day's row
    out["log_rows"] = np.asarray(state["log_rows"])[-1:]
    out["shares_hist"] = np.asarray(state["shares_hist"])[-1:]
    out["labels"] = np.asarray(labels.astype(str), dtype=str)
    out["days"] = dates[t0 : int(state["next_t"])].asi8  # the account's days, first to last
    for key in _DAY_INDEX:
        out[key] = np.asarray(state[key], dtype=np.int64) - t0
    exit_day = np.asarray(state["exit_day"], dtype=np.int64)
    out["exit_day"] = np.where(exit_day >= 0, exit_day - t0, -1)
    del out["next_t"]
    return out


def placed(saved: dict, labels: pd.Index, dates: pd.DatetimeIndex) -> tuple[dict, int, int]:
    """A portable state -> positions in this panel: (state with next_t, t0, the account's last
    day's position). Refuses a panel whose days up to the last one differ from the account's, or
    that lacks a ticker the account knew."""
    days = pd.DatetimeIndex(saved["days"])
    t0 = int(dates.searchsorted(days[0]))
    last = t0 + len(days) - 1
    if last >= len(dates) or not dates[t0 : last + 1].equals(days):
        raise BadInputError(
            f"the dataset's trading days from {days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d} differ "
            "from the days this live account traded (a day added or removed in its past): the "
            "account's books cannot continue on it; rebuild the dataset the account traded on, "
            "or start a new account"
        )
    column = labels.get_indexer(pd.Index(saved["labels"]))
    if (column < 0).any():
        gone = list(pd.Index(saved["labels"])[column < 0][:5])
        raise BadInputError(
            f"the dataset has no {gone} any more, which this live account knew: its books "
            "cannot continue on it"
        )
    n = len(labels)
    out = dict(saved)
    for key in _PER_TICKER:
        fill = {"exit_day": -1, "stop": np.nan, "take_profit": np.nan}.get(key, 0.0)
        values = np.full(n, fill, dtype=np.int64 if key == "exit_day" else float)
        values[column] = saved[key]
        out[key] = values
    out["exit_day"] = np.where(out["exit_day"] >= 0, out["exit_day"] + t0, -1)
    for key in _TICKER_INDEX:  # (-1: a cash flow tied to no ticker, such as interest)
        idx = np.asarray(saved[key], dtype=np.int64)
        out[key] = np.where(idx >= 0, column[np.maximum(idx, 0)], -1)
    for key in _DAY_INDEX:
        out[key] = np.asarray(saved[key], dtype=np.int64) + t0
    for key in _TICKER_COLUMNS:
        old = np.asarray(saved[key]).reshape(-1, len(column))
        values = np.zeros((len(old), n))
        values[:, column] = old
        out[key] = values
    # the days before the last as zeros (the journal has them), the last day's row in place
    k = len(days)
    for key, width in (("log_rows", np.asarray(saved["log_rows"]).shape[1]), ("shares_hist", n)):
        full = np.zeros((k, width))
        full[-1] = out[key][-1]
        out[key] = full
    out["next_t"] = last + 1
    for key in ("labels", "days"):
        del out[key]
    return out, t0, last


def save(path, state: dict) -> None:
    arrays = {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta, default=float)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        return {**meta, **{k: data[k] for k in data.files if k != "__meta__"}}
