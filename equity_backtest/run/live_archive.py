"""A live account's journal written as a run archive (E12), so that 04 evaluates it as it
evaluates a backtest: the usual tear sheet, metrics and exports over the live period.

The account's own books come from its journal, every number as it was journaled: the runtime
log (each day's "row"), trades (its "fills"), the cash ledger (its "cash" flows, the running
balance from the account's starting cash), the holdings (its "positions", priced at the panel's
mark of the day, as a backtest prices them) and the target weights. What a live account and the
backtest of its days share (the benchmark, names and sectors, the parameters and algorithm it
trades with, the dataset version, the package versions) is copied from that backtest's archive;
run.json says it is a live account, with its broker, window and values. The journal is only
read: the archive is a report, written again by each 04.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.panel import Panel
from ..engine.archive import FILES, finish_run_dir, start_run_dir
from ..engine.loop_state import RUNTIME_COLUMNS
from ..engine.positions import positions_table
from ..infra.storage import atomic_write_csv, atomic_write_text
from .live import JOURNAL, Journal

# the archive's files that hold the account's own books; the rest come from the backtest
OWN = ("runtime_log.csv", "trades.csv", "cash_ledger.csv", "positions.feather",
       "target_weights.csv", "run.json")  # fmt: skip
INTEGER_COLUMNS = ("positions", "orders", "fills", "stops")


def write(account: Path, backtest: Path, out: Path, panel: Panel) -> Path:
    """Write the archive of live account folder `account` into `out` (which must not exist),
    with what it shares with the backtest of its days copied from `backtest`."""
    records = Journal(Path(account) / JOURNAL).records
    days = [r for r in records if r["kind"] == "day"]
    opened = next(r for r in records if r["kind"] == "open")
    stopped = next((r for r in records if r["kind"] == "stopped"), None)
    start = float(opened.get("starting_cash") or 0.0)
    tmp = start_run_dir(out)
    for name in (f.name for f in FILES if f.name not in OWN):
        if (backtest / name).is_file():
            shutil.copyfile(backtest / name, tmp / name)
    for copied in backtest.glob("*.py"):  # parameters.py and the algorithm's copy
        shutil.copyfile(copied, tmp / copied.name)
    runtime = runtime_log(days)
    atomic_write_csv(tmp / "runtime_log.csv", runtime)
    atomic_write_csv(tmp / "trades.csv", trades(days, panel))
    atomic_write_csv(tmp / "cash_ledger.csv", cash_ledger(days, panel, start))
    atomic_write_csv(tmp / "target_weights.csv", target_weights(days, panel))
    positions(days, panel, runtime["value"].to_numpy()).to_feather(
        tmp / "positions.feather", compression="zstd"
    )
    info = json.loads((backtest / "run.json").read_text())
    info.update(
        status=f"live ({stopped['message']})" if stopped else "live",
        message=f"live account {Path(account).name}, broker {opened.get('broker', 'paper')}",
        start=days[0]["date"],
        end=days[-1]["date"],
        heartbeats=len(days),
        starting_value=start,
        final_value=float(runtime["value"].iloc[-1]),
        warnings=[],
        live_account=str(account),
        broker=opened.get("broker", "paper"),
    )
    atomic_write_text(tmp / "run.json", json.dumps(info, indent=1, sort_keys=True) + "\n")
    return finish_run_dir(tmp, out)


def runtime_log(days: list[dict]) -> pd.DataFrame:
    """One row per journaled bar, in the backtest's columns and types."""
    frame = pd.DataFrame([r["row"] for r in days], columns=RUNTIME_COLUMNS[1:])
    frame.insert(0, "date", pd.to_datetime([r["date"] for r in days]))
    frame["rebalance"] = frame["rebalance"].astype(bool)
    for column in INTEGER_COLUMNS:
        frame[column] = frame[column].astype(np.int64)
    return frame


def _tickers(labels: list[str], panel: Panel) -> np.ndarray:
    """The tickers of journaled labels (a label is unique where a ticker was reused)."""
    if not labels:
        return np.array([], dtype=object)
    where = panel.labels.get_indexer(labels)
    known = np.append(np.asarray(panel.tickers, dtype=object), None)
    named = known[where]  # (-1, a label the panel lacks: keep the label)
    return np.where(pd.isna(named), np.asarray(labels, dtype=object), named)


def trades(days: list[dict], panel: Panel) -> pd.DataFrame:
    """Every fill the account booked, as the backtest's trades.csv."""
    rows = [{"date": r["date"], **f} for r in days for f in r["fills"]]
    columns = ["date", "ticker", "shares", "price", "value", "commission", "slippage", "reason"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["date"] = pd.to_datetime(frame["date"])
    frame["ticker"] = _tickers(frame["ticker"].tolist(), panel)
    frame["value"] = frame["shares"] * frame["price"]
    return frame[columns]


def cash_ledger(days: list[dict], panel: Panel, start: float) -> pd.DataFrame:
    """Every change of cash (none of zero), with the running balance from the starting cash."""
    rows = [{"date": r["date"], **c} for r in days for c in r["cash"] if c["amount"] != 0]
    columns = ["date", "kind", "ticker", "amount", "balance"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["date"] = pd.to_datetime(frame["date"])
    named = frame["ticker"] != ""
    frame.loc[named, "ticker"] = _tickers(frame.loc[named, "ticker"].tolist(), panel)
    frame["balance"] = start + frame["amount"].cumsum()
    return frame[columns]


def target_weights(days: list[dict], panel: Panel) -> pd.DataFrame:
    """What compute_weights answered on each rebalance day (non-zero weights)."""
    rows = [
        {"date": r["date"], "ticker": label, "weight": w}
        for r in days
        for label, w in r.get("weights", {}).items()
    ]
    if not rows:
        return pd.DataFrame(columns=["date", "ticker", "weight"])
    frame = pd.DataFrame(rows)
    frame["date"] = pd.to_datetime(frame["date"])
    frame["ticker"] = _tickers(frame["ticker"].tolist(), panel)
    return frame


def positions(days: list[dict], panel: Panel, equity: np.ndarray) -> pd.DataFrame:
    """Each bar's holdings, as the engine tables a backtest's (engine.positions.positions_table)
    from the journaled shares: priced at the panel's mark of that bar."""
    t0 = int(panel.dates.get_indexer([pd.Timestamp(days[0]["date"])])[0])
    shares = np.zeros((len(days), len(panel.labels)))
    for k, record in enumerate(days):  # (a live account's bars are the panel's days in a row)
        held = record["positions"]
        shares[k, panel.labels.get_indexer(list(held))] = list(held.values())
    return positions_table(shares, panel, t0, equity)
