"""The investor's orders recorded in a live account (E12): `python -m equity_backtest.investor
... --record`, so what was planned and what was actually done are kept, as a live account with
the file broker keeps them.

The account is `<live_dir>/<account>/` (default `investor_<theme>`), with the live account's
hash-chained journal. Each call appends a "plan" record (the plan's date, its summary, and its
orders, each with an idempotency key `<account>:<date>:<stock>` and the price it was planned at)
and writes the orders to `orders/<date>.csv` for the investor to place. Before a later plan is
recorded, the broker's fill report of the previous one must be in `fills/<date>.csv` (read
through `live_fill_columns`): it is journaled as a "fills" record with each order's
implementation shortfall, and `04_evaluate.py --live` reports them. Asking again on the same
day with the same orders records nothing new; with other orders it is refused (a plan is never
rewritten).
"""

from __future__ import annotations

from pathlib import Path

from ..config import Parameters
from ..errors import BadInputError
from ..infra import locks
from ..run import live
from ..run import live_file_broker as file_broker
from .planner import Plan


def record(plan: Plan, params: Parameters, account: str = "") -> tuple[Path, bool]:
    """Journal the plan (after the previous plan's fills); returns the folder and whether a new
    plan was recorded."""
    folder = Path(params.live_dir) / (account or f"investor_{plan.summary['theme']}")
    folder.mkdir(parents=True, exist_ok=True)
    date = plan.summary["date"]
    orders = [
        {"ticker": str(row.stock), "shares": float(row.trade),
         "key": f"{folder.name}:{date}:{row.stock}", "reference_price": float(row.price)}
        for row in plan.orders.itertuples()
        if row.trade != 0
    ]  # fmt: skip
    with locks.stage_lock(folder, "live"):
        journal = live.Journal(folder / live.JOURNAL)
        plans = [r for r in journal.records if r["kind"] == "plan"]
        last = plans[-1] if plans else None
        if last is not None and last["date"] == date:
            if last["orders"] != orders:
                raise BadInputError(
                    f"{folder}: a plan for {date} is recorded with other orders; a plan is never "
                    "rewritten (record this one under another --record name, or wait for new prices)"
                )
            return folder, False
        if last is not None:
            _record_fills(params, folder, journal, last)
        journal.append({"kind": "plan", "date": date, "summary": plan.summary, "orders": orders})
        reference = {o["ticker"]: o["reference_price"] for o in orders}
        file_broker.write_orders(folder, date, orders, reference)
    return folder, True


def _record_fills(params: Parameters, folder: Path, journal: live.Journal, last: dict) -> None:
    """The broker's report of the previous plan's orders, journaled once with the shortfalls."""
    done = {r["plan_date"] for r in journal.records if r["kind"] == "fills"}
    if last["date"] in done or not last["orders"]:
        return
    report = file_broker.read_fills(folder, last["date"], params.live_fill_columns, last["orders"])
    reference = {o["ticker"]: o["reference_price"] for o in last["orders"]}
    journal.append(
        {
            "kind": "fills",
            "plan_date": last["date"],
            "fills": report.to_dict("records"),
            "shortfall": file_broker.shortfall(last["orders"], report, reference),
        }
    )
