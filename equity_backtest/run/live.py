"""Live mode (E12): the same algorithm trades an account day by day as new data arrives.

A live account is a folder, `<live_dir>/<live_account>/`, that only grows:
  - journal.jsonl: one JSON line per record, each carrying the SHA-256 of the line before (a
    chain that shows any edit): "open" (the first bar, the broker, the fingerprint of the
    algorithm and the trading parameters), "change" (an accepted change of either, with what
    changed), "day" (the bar's date, its runtime row, fills, cash flows, and on a rebalance day
    the target weights and the orders, each with an idempotency key) and "stopped";
  - state.npz: the loop's books after the last journaled bar, by ticker label and date
    (engine.live_state), replaced atomically.

`03_trade.py --live` (for cron, after 01 and 02 brought the newest data in) runs every bar the
dataset has that the account has not: exactly the backtest's day (engine.loop.Heartbeat.step),
the state saved, then the day journaled. A decision is never taken twice for a bar: a crash after
the state but before the journal line is repaired from the state (nothing recomputed), a torn
last line is cut, and a bar already journaled is never run again. Several new bars (the machine
was off) are caught up in order, with a warning. The account refuses a dataset that ends before
its last bar, a dataset whose past days differ from the ones it traded, and a changed algorithm
or trading parameters unless `--accept-change` (journaled).

Brokers (run.live_brokers, one small interface: place a decision's orders, report their
fills): `paper`, fills by the engine's own cost model, as in a backtest, so an account's ledger
equals a backtest of the same algorithm over the same days; `file` and `alpaca`, which report
what actually filled. Orders carry idempotency keys (`<account>:<date>:<ticker>`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..config import Parameters
from ..data import vendors
from ..data.panel import load_panel
from ..engine import live_state
from ..engine.broker import Fills
from ..engine.checkpoint import file_digest
from ..engine.clock import rebalance_days
from ..engine.loop import Heartbeat
from ..engine.loop_state import RUNTIME_COLUMNS, LoopState
from ..engine.orders import borrowing_room
from ..engine.spec import EngineSpec
from ..engine.strategy_loader import load_compute_weights
from ..errors import BadInputError
from ..infra import faults, locks
from ..infra.storage import atomic_write_text
from . import live_brokers
from . import live_file_broker as file_broker

log = logging.getLogger(__name__)

JOURNAL, STATE, INTRADAY = "journal.jsonl", "state.npz", "intraday"
LIVE_END = dt.date(2200, 1, 1)  # the panel of a live account reaches the newest data
# settings that say where things are or how a run is kept, not what the account trades
OPERATIONAL = {
    "start", "end", "query_start", "query_end", "sim_clock", "dataset_version", "datalog_dir",
    "datasets_dir", "results_dir", "store_cache_dir", "live_dir", "live_account", "mode",
    "checkpoint_days", "checkpoint_after_s", "panel_cache", "algorithm",
}  # fmt: skip


@dataclasses.dataclass
class LiveOutcome:
    folder: Path
    days: list[dt.date]  # the bars run by this invocation
    last_day: dt.date | None
    value: float
    status: str  # "waiting" (before start), "up to date", "traded", "stopped: equity exhausted"


def account_folder(params: Parameters) -> Path:
    return Path(params.live_dir) / (params.live_account or Path(params.algorithm).stem)


def trading_inputs(params: Parameters) -> dict:
    """What the account's trades depend on: the algorithm file's bytes and every parameter
    that is not operational (compute_weights may read any of them)."""
    kept = {k: v for k, v in params.as_dict().items() if k not in OPERATIONAL}
    return {"algorithm": file_digest(params.algorithm), "parameters": kept}


class Journal:
    """journal.jsonl, read and checked on open, appended line by line with fsync."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict] = []
        if not path.exists():
            return
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        elif lines:  # a torn last line: the writer died in it (the state holds that day)
            log.warning("%s: a torn last line (a crash while writing) is cut", path)
            cut = len(data) - len(lines.pop())
            os.truncate(path, cut)
        prev = ""
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                raise BadInputError(f"{path} line {number} is not JSON: the journal was edited "
                                    "or damaged; restore it from a backup") from None  # fmt: skip
            if record.get("prev") != prev or record.get("hash") != _digest(record):
                raise BadInputError(
                    f"{path} line {number}: its hash chain breaks (the journal was edited or "
                    "damaged after it was written); restore it from a backup"
                )
            prev = record["hash"]
            self.records.append(record)

    @property
    def last_hash(self) -> str:
        return self.records[-1]["hash"] if self.records else ""

    @property
    def last_day(self) -> pd.Timestamp | None:
        days = [r["date"] for r in self.records if r["kind"] == "day"]
        return pd.Timestamp(days[-1]) if days else None

    @property
    def in_force(self) -> dict | None:
        """The latest "open" or "change" record: the inputs the account trades with."""
        return next((r for r in reversed(self.records) if r["kind"] in ("open", "change")), None)

    @property
    def inputs(self) -> dict | None:
        return self.in_force["inputs"] if self.in_force else None

    def append(self, record: dict) -> None:
        record = {**record, "seq": len(self.records), "prev": self.last_hash}
        record["hash"] = _digest(record)
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with open(self.path, "ab") as fh:
            fh.write(line[: len(line) // 2])
            fh.flush()
            faults.point("write")  # (a torn line: the reader's case)
            fh.write(line[len(line) // 2 :])
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def step(params: Parameters, *, accept_change: bool = False, progress: bool = False) -> LiveOutcome:
    """Run every new bar of the dataset on the live account (see the module docstring)."""
    if params.live_broker not in live_brokers.NAMES:
        raise BadInputError(
            f"live_broker = {params.live_broker!r}: choose one of {live_brokers.NAMES}"
        )
    if "://" in str(params.live_dir):
        raise BadInputError(
            f"live_dir = {params.live_dir!r}: a live account is a local folder (its journal is "
            "appended and fsynced line by line); copy it to a store for safekeeping instead"
        )
    folder = account_folder(params)
    folder.mkdir(parents=True, exist_ok=True)
    with locks.stage_lock(folder, "live"):
        return _step(params, folder, accept_change, progress)


def _step(params: Parameters, folder: Path, accept_change: bool, progress: bool) -> LiveOutcome:
    journal = Journal(folder / JOURNAL)
    panel = load_panel(params.replace(end=LIVE_END))
    dates, spec = panel.dates, EngineSpec.of(params)
    name = Path(params.algorithm).name
    compute_weights = load_compute_weights(params.algorithm)
    inputs = trading_inputs(params)
    t1 = len(dates) - 1
    stopped = next((r for r in journal.records if r["kind"] == "stopped"), None)
    if stopped is not None:  # equity was exhausted: the account trades no more
        log.warning("live account %s stopped on %s: %s", folder, stopped["date"],
                    stopped["message"])  # fmt: skip
        return LiveOutcome(folder, [], pd.Timestamp(stopped["date"]).date(), 0.0,
                           "stopped: equity exhausted")  # fmt: skip
    broker = live_brokers.make(params, folder)
    fresh = not (folder / STATE).exists() and journal.last_day is None
    if fresh:  # a new account (or one killed before its first bar was saved)
        opened = next((r for r in journal.records if r["kind"] == "open"), None)
        begin = pd.Timestamp(opened["date"] if opened else params.start)
        t0 = int(dates.searchsorted(begin))
        if t0 > t1:  # cron set up before the first day: nothing to do yet
            log.info("live account %s starts on %s; the data ends on %s: nothing to do yet",
                     folder, f"{begin:%Y-%m-%d}", f"{dates[-1]:%Y-%m-%d}")  # fmt: skip
            return LiveOutcome(folder, [], None, params.starting_cash, "waiting")
        if opened is None:
            journal.append({"kind": "open", "date": f"{dates[t0]:%Y-%m-%d}", "inputs": inputs,
                            "algorithm_file": str(params.algorithm),
                            "broker": params.live_broker,
                            "starting_cash": params.starting_cash})  # fmt: skip
        else:
            _check_inputs(journal, inputs, accept_change, str(params.algorithm))
        n = len(panel.tickers)
        state = LoopState.fresh(spec, n, t1 - t0 + 1, None, np.zeros(n))
        first = t0
    else:
        _check_inputs(journal, inputs, accept_change, str(params.algorithm))
        saved = live_state.load(folder / STATE) if (folder / STATE).exists() else None
        if saved is None:
            raise BadInputError(f"{folder / STATE} is missing: the account's books are gone; "
                                "restore the folder from a backup")  # fmt: skip
        days = pd.DatetimeIndex(saved["days"])
        if dates[-1] < days[-1]:
            raise BadInputError(
                f"the dataset ends on {dates[-1]:%Y-%m-%d}, before this account's last bar "
                f"{days[-1]:%Y-%m-%d}: run 01 and 02 to bring the newest data in (or pass the "
                "dataset version the account last traded on)"
            )
        placed, t0, last = live_state.placed(saved, panel.labels, dates)
        state = LoopState.resume(placed, spec, len(panel.tickers), t1 - t0 + 1, t0)
        first = last + 1
        if journal.last_day is None or journal.last_day < dates[last]:
            # the state was saved and the process died before journaling that day
            before = next((r for r in reversed(journal.records) if r["kind"] == "day"), None)
            day = Heartbeat(panel, spec, state, t0)
            record = _day_record(state, day, last, panel, folder.name)
            report = broker.fills(before) if before and before.get("orders") else None
            if report is not None:  # (the fills it booked, as the broker reported them)
                reference = {o["ticker"]: o["reference_price"] for o in before["orders"]}
                record["shortfall"] = file_broker.shortfall(before["orders"], report, reference)
            journal.append(record)
            log.warning("journaled %s from the saved books (the last run stopped between "
                        "the two)", f"{dates[last]:%Y-%m-%d}")  # fmt: skip
        # the last journaled orders to the broker, if a run died before placing them (the
        # file is written once, and Alpaca is asked for each key before it is sent)
        broker.place(next(r for r in reversed(journal.records) if r["kind"] == "day"))
    todo = list(range(first, t1 + 1))
    if not todo:
        log.info("live account %s is up to date (last bar %s)", folder, f"{dates[t1]:%Y-%m-%d}")
        return LiveOutcome(folder, [], dates[t1].date(), _value(state, t1, t0), "up to date")
    if len(todo) > 1 and journal.last_day is not None:
        log.warning("catching up %d bars, %s to %s (runs were missed)", len(todo),
                    f"{dates[todo[0]]:%Y-%m-%d}", f"{dates[todo[-1]]:%Y-%m-%d}")  # fmt: skip
    rebalance = rebalance_days(dates, t0, t1, spec.rebalance, live=True)
    day = Heartbeat(panel, spec, state, t0)
    status = "traded"
    for t in tqdm(todo, desc="live", unit="bar", disable=not progress, leave=False):
        faults.point("heartbeat")
        reported = _reported_fills(broker, folder, journal, day, t)
        gone = day.step(t, bool(rebalance[t]), compute_weights, params, name)
        if not broker.takes_exits:
            _no_exits(state, dates[t], broker.name)
        saved = live_state.portable(state.as_dict(t + 1, t0), panel.labels, dates, t0)
        live_state.save(folder / STATE, saved)
        faults.point("write")  # (between the books and the journal: the repair's case)
        record = _day_record(state, day, t, panel, folder.name)
        if reported is not None:
            orders, report = reported
            reference = {o["ticker"]: o["reference_price"] for o in orders}
            record["shortfall"] = file_broker.shortfall(orders, report, reference)
        journal.append(record)
        broker.place(record)
        state.ledger.forget_before(t + 1)  # (journaled: the books keep only what is to come)
        state.weight_rows = state.weight_rows[-1:]
        if gone:
            journal.append({"kind": "stopped", "date": f"{dates[t]:%Y-%m-%d}", "message": gone})
            status = "stopped: equity exhausted"
            todo = todo[: todo.index(t) + 1]
            break
    last = todo[-1]
    return LiveOutcome(folder, [dates[t].date() for t in todo], dates[last].date(),
                       _value(state, last, t0), status)  # fmt: skip


def _reported_fills(broker, folder: Path, journal: Journal, day: Heartbeat, t: int):
    """Orders waiting and a broker that reports fills: its report of them, set as the day's
    fills: (orders, report). The paper broker: its fills at an intraday heartbeat's price, if
    one came (None returned). No report yet: WaitingError, nothing of bar t done."""
    day.external = None
    if not day.state.pending.any():
        return None
    last = next(r for r in reversed(journal.records) if r["kind"] == "day")
    report = broker.fills(last)
    if report is None:
        filled = folder / INTRADAY / f"{day.panel.dates[t]:%Y-%m-%d}.json"
        if filled.is_file():
            fills = _fills_from(json.loads(filled.read_text()), day.panel.labels)
            day.external = lambda _t, _orders: fills
        return None
    labels = day.panel.labels
    day.external = lambda _t, _orders: file_broker.as_fills(report, labels)
    return last.get("orders", []), report


def _no_exits(state: LoopState, date, broker: str) -> None:
    """A broker's market orders at the next open carry no stops, targets or time exits, which
    the engine fills inside a bar: an algorithm that sets them is refused with such a broker."""
    if (np.isfinite(state.stop).any() or np.isfinite(state.take_profit).any()
            or (state.exit_day >= 0).any()):  # fmt: skip
        raise BadInputError(
            f"the algorithm set stops, take-profit targets or time exits on {date:%Y-%m-%d}; "
            f"the {broker} broker places market orders at the next open, so it takes target "
            "weights only (use live_broker = 'paper' for exits)"
        )


def _check_inputs(journal: Journal, inputs: dict, accept_change: bool, algorithm: str) -> None:
    before = journal.inputs or {}
    if before == inputs:
        return
    changed = sorted(
        {k for k in set(before.get("parameters", {})) | set(inputs["parameters"])
         if before.get("parameters", {}).get(k) != inputs["parameters"].get(k)}
    )  # fmt: skip
    if before.get("algorithm") != inputs["algorithm"]:
        changed.insert(0, "the algorithm file")
    if not accept_change:
        raise BadInputError(
            f"this live account traded with other inputs: {', '.join(changed)} changed. Rerun "
            "with --accept-change to go on with the new ones (the change is journaled), or "
            "restore the old ones"
        )
    journal.append({"kind": "change", "changed": changed, "inputs": inputs,
                    "algorithm_file": algorithm})  # fmt: skip
    log.warning("live account: accepted a change of %s (journaled)", ", ".join(changed))


def _value(state: LoopState, t: int, t0: int) -> float:
    return float(state.log_rows[t - t0][RUNTIME_COLUMNS.index("value") - 1])


def _day_record(state: LoopState, day: Heartbeat, t: int, panel, account: str) -> dict:
    """What the account did on bar t, as journaled: every number as the books hold it."""
    labels, date = panel.labels, f"{panel.dates[t]:%Y-%m-%d}"
    row = state.log_rows[t - day.t0]
    trades, cash = state.ledger.day(t)
    record = {
        "kind": "day",
        "date": date,
        "row": {c: float(v) for c, v in zip(RUNTIME_COLUMNS[1:], row, strict=True)},
        "fills": [
            {
                "ticker": str(labels[i]),
                "shares": float(n),
                "price": float(p),
                "commission": float(c),
                "slippage": float(s),
                "reason": reason,
            }
            for idx, shares, price, comm, slip, reason in trades
            for i, n, p, c, s in zip(idx, shares, price, comm, slip, strict=True)
        ],  # fmt: skip
        "cash": [
            {"kind": kind, "ticker": str(labels[i]) if i >= 0 else "", "amount": float(a)}
            for kind, idx, amounts in cash
            for i, a in zip(np.atleast_1d(idx), np.atleast_1d(amounts), strict=True)
        ],
    }
    held = state.ledger.shares
    record["positions"] = {str(labels[i]): float(held[i]) for i in np.flatnonzero(held)}
    if state.weight_rows and state.weight_rows[-1][0] == t:
        target = state.weight_rows[-1][1]
        record["weights"] = {str(labels[i]): float(target[i]) for i in np.flatnonzero(target)}
        close = day.mark0[t]
        record["orders"] = [
            {"ticker": str(labels[i]), "shares": float(state.pending[i]),
             "key": f"{account}:{date}:{labels[i]}", "reference_price": float(close[i])}
            for i in np.flatnonzero(state.pending)
        ]  # fmt: skip
    return record


def journaled_days(folder: Path) -> pd.DataFrame:
    """The account's bars as a table: date and the runtime columns, from its journal."""
    days = [r for r in Journal(Path(folder) / JOURNAL).records if r["kind"] == "day"]
    if not days:
        raise BadInputError(f"live account {folder} has no bar yet: run 03_trade.py --live first")
    frame = pd.DataFrame([{"date": pd.Timestamp(r["date"]), **r["row"]} for r in days])
    return frame


def live_against_backtest(live: pd.DataFrame, backtest: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Day by day, the live account's value against the backtest's over the same days, and the
    tracking difference (annualised mean of the daily return differences), the tracking error
    (their annualised standard deviation) and the largest gap in value."""
    both = live.set_index("date")[["value"]].merge(
        backtest.set_index("date")[["value"]], how="inner", left_index=True, right_index=True,
        suffixes=("_live", "_backtest"),
    )  # fmt: skip
    both["difference"] = both["value_live"] - both["value_backtest"]
    both["relative_difference"] = both["value_live"] / both["value_backtest"] - 1
    diff = both["value_live"].pct_change() - both["value_backtest"].pct_change()
    summary = {
        "days": len(both),
        "first_day": f"{both.index[0]:%Y-%m-%d}",
        "last_day": f"{both.index[-1]:%Y-%m-%d}",
        "days_not_in_backtest": int(len(live) - len(both)),
        "live_total_return": float(both["value_live"].iloc[-1] / live["value"].iloc[0] - 1),
        "backtest_total_return": float(
            both["value_backtest"].iloc[-1] / both["value_backtest"].iloc[0] - 1
        ),
        "tracking_difference_annual": float(diff.mean() * 252) if len(both) > 1 else 0.0,
        "tracking_error_annual": float(diff.std() * np.sqrt(252)) if len(both) > 2 else 0.0,
        "largest_value_gap": float(both["difference"].abs().max()),
    }
    return both.reset_index(), summary


def shortfalls(folder: Path) -> pd.DataFrame:
    """Every order the file broker filled (or left unfilled): the day of the fill, intended and
    filled shares, reference and fill price, commission, implementation shortfall."""
    rows = [
        {"date": r.get("date", r.get("plan_date")), **s}
        for r in Journal(Path(folder) / JOURNAL).records
        if r["kind"] in ("day", "fills")  # (fills: the investor's recorded plans)
        for s in r.get("shortfall", [])
    ]
    columns = ["date", "key", "ticker", "intended", "filled", "unfilled", "reference_price",
               "fill_price", "commission", "shortfall"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def intraday(params: Parameters, moment: pd.Timestamp) -> Path | None:
    """An intraday heartbeat (paper broker): the orders decided at the last bar's close fill at
    the vendor's latest prices now, by the engine's broker and cost model (the previous day's
    volume caps them), written to intraday/<session>.json for the bar's step to book. Once per
    session: a later heartbeat of the same session does nothing. Returns the file written."""
    folder = account_folder(params)
    if params.live_broker != "paper":
        raise BadInputError(f"an intraday heartbeat fills by the engine's broker: it needs "
                            f"live_broker = 'paper', not {params.live_broker!r}")  # fmt: skip
    if not (folder / JOURNAL).exists():
        return None
    with locks.stage_lock(folder, "live"):
        journal = Journal(folder / JOURNAL)
        session = pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).normalize()
        target = folder / INTRADAY / f"{session:%Y-%m-%d}.json"
        last = next((r for r in reversed(journal.records) if r["kind"] == "day"), None)
        if last is None or pd.Timestamp(last["date"]) >= session or target.exists():
            return None  # no bar yet, this session's bar done, or filled at an earlier beat
        if not last.get("orders") or not (folder / STATE).exists():
            return None
        panel = load_panel(params.replace(end=LIVE_END))
        spec = EngineSpec.of(params)
        placed, t0, t = live_state.placed(live_state.load(folder / STATE), panel.labels,
                                          panel.dates)  # fmt: skip
        pending = placed["pending"]
        ordered = [str(panel.labels[i]) for i in np.flatnonzero(pending)]
        latest = vendors.latest_prices(params, ordered, moment)
        price = np.full(len(pending), np.nan)
        price[panel.labels.get_indexer(ordered)] = latest.reindex(ordered).to_numpy(dtype=float)
        sigma = panel.volatility(spec.impact_vol_days)[t] if spec.costs.impact_coef > 0 else None
        equity = float(placed["prev_value"])
        fills = spec.broker().execute(
            pending, price, panel.fields["volume"][t], placed["ledger_shares"],
            float(placed["ledger_cash"][0]), sigma,
            -borrowing_room(spec.orders.max_leverage, equity),
        )  # fmt: skip
        record = {"session": f"{session:%Y-%m-%d}", "moment": pd.Timestamp(moment).isoformat(),
                  "fills": [{"ticker": str(panel.labels[i]), "shares": float(q), "price": float(p),
                             "mid": float(m), "commission": float(c), "slippage": float(s)}
                            for i, q, p, m, c, s in zip(fills.idx, fills.shares, fills.price,
                                                        fills.mid, fills.commission,
                                                        fills.slippage, strict=True)]}  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(record, sort_keys=True, indent=1) + "\n")
        log.info("live: the orders of %s filled at the heartbeat of %s", last["date"], moment)
        return target


def _fills_from(record: dict, labels: pd.Index) -> Fills:
    rows = record["fills"]
    column = {k: np.array([r[k] for r in rows], dtype=float)
              for k in ("shares", "price", "mid", "commission", "slippage")}  # fmt: skip
    idx = labels.get_indexer([r["ticker"] for r in rows]).astype(np.int64)
    return Fills(idx, column["shares"], column["price"], column["mid"], column["commission"],
                 column["slippage"])  # fmt: skip


def traded_with(params: Parameters, folder: Path) -> dict:
    """The settings the account trades with, from its journal, for a backtest of the same
    algorithm (04 --live): its trading parameters and algorithm file, which must still be the
    file it traded (its digest is checked)."""
    record = Journal(Path(folder) / JOURNAL).in_force
    if record is None:
        raise BadInputError(f"live account {folder} has no journal yet: run 03_trade.py --live")
    algorithm = record.get("algorithm_file", str(params.algorithm))
    if file_digest(algorithm) != record["inputs"]["algorithm"]:
        raise BadInputError(
            f"{algorithm} is not the algorithm file live account {folder} trades with (its "
            "bytes differ, or it moved): restore it, or pass --algorithm with the one it trades"
        )
    return {**record["inputs"]["parameters"], "algorithm": algorithm}
