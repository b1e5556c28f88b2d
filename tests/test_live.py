"""E12 live mode: a live account run day by day on the simulated market's clock (sim_clock), as
cron runs 01, 02 and `03_trade.py --live`, equals a backtest of the same algorithm over the same
days; kills at any moment and reruns give the same journal; the account refuses what it must."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest import api
from equity_backtest.config import Parameters
from equity_backtest.data.vendors import simulated
from equity_backtest.run import live

from .conftest import REPO, run_script, write_parameters_file

SIM = dict(sim_n_tickers=24, sim_index_size=8, sim_start=dt.date(2010, 1, 1),
           sim_end=dt.date(2012, 6, 29), seed=5, index="TOP8")  # fmt: skip
LIVE = dict(**SIM, start=dt.date(2011, 1, 3), end=dt.date(2011, 12, 30), rebalance="weekly",
            datalog_dir="datalog", datasets_dir="datasets", results_dir="results",
            live_dir="live", algorithm="algorithm.py")  # fmt: skip


def sessions(first: str, last: str) -> list[dt.date]:
    settings = simulated.SimulationSettings(24, 8, SIM["sim_start"], SIM["sim_end"], 5)
    days = pd.DatetimeIndex(sorted(simulated.simulate(settings).prices["date"].unique()))
    return [d.date() for d in days[(days >= first) & (days <= last)]]


def project(root: Path) -> Parameters:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    write_parameters_file(root / "parameters.py", **LIVE)
    return Parameters().replace(
        **{k: (str(root / v) if k.endswith("_dir") or k == "algorithm" else v)
           for k, v in LIVE.items()}
    )  # fmt: skip


def cron(params: Parameters, day: dt.date) -> live.LiveOutcome:
    """What cron runs after the close of `day`: 01 (the market's clock at that day), 02, 03."""
    today = params.replace(sim_clock=day)
    api.query(today)
    api.build(today)
    return live.step(today)


def journal(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / live.JOURNAL).read_text().splitlines()]


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """A year of a live account: every day for two months, then cron runs that miss days
    (1 to 7 bars apart, seeded), so the rest is caught up in order; now and then (seeded) a run
    of `03_trade.py --live` is killed at a random point of its work, and the next run goes on."""
    root = tmp_path_factory.mktemp("live_year")
    params = project(root)
    days = sessions("2010-12-27", "2011-12-30")
    api.query(params.replace(sim_clock=days[0]))  # the history before the account's start
    rng = random.Random(3)
    k, runs, caught_up, killed = 1, [], 0, 0
    while k < len(days):
        if days[k] > dt.date(2011, 1, 10) and rng.random() < 0.06:  # killed now and then
            today = params.replace(sim_clock=days[k])
            api.query(today)
            api.build(today)
            kill = rng.choice(["heartbeat:1", "write:2", "write:3", "write:4", "write:5",
                               "write:6", "write:11"])  # fmt: skip
            proc = run_script(root, str(REPO / "03_trade.py"), "--live", check=False,
                              env={"EQUITY_BACKTEST_KILL_AT": kill})  # fmt: skip
            killed += proc.returncode == -9
        outcome = cron(params, days[k])
        runs.append(outcome)
        caught_up += len(outcome.days) > 1
        k += 1 if days[k] < dt.date(2011, 3, 1) else rng.randint(1, 7)
    assert killed >= 3
    if runs[-1].last_day != days[-1]:
        runs.append(cron(params, days[-1]))
    return root, params, runs, caught_up


def test_a_year_of_cron_runs_equals_the_backtest_of_the_same_days(year):
    root, params, runs, caught_up = year
    assert caught_up > 10 and runs[-1].last_day == dt.date(2011, 12, 30)
    records = journal(root / "live" / "algorithm")
    days = [r for r in records if r["kind"] == "day"]
    assert [r["kind"] for r in records[:1]] == ["open"] and len(days) == 252
    assert len({r["date"] for r in days}) == 252  # no bar twice
    ours = pd.DataFrame([{"date": pd.Timestamp(r["date"]), **r["row"]} for r in days])
    run = api.backtest(params.replace(sim_clock=None), run_dir=root / "results" / "bt")
    theirs = pd.read_csv(run.folder / "runtime_log.csv", parse_dates=["date"])
    assert ours["date"].tolist() == theirs["date"].tolist()
    money = ["value", "cash", "holdings_value", "bought", "sold", "commission", "slippage",
             "dividends", "delisting_proceeds", "interest"]  # fmt: skip
    np.testing.assert_allclose(
        ours[money].to_numpy(), theirs[money].to_numpy(), rtol=1e-9, atol=1e-6
    )
    trades = pd.read_csv(run.folder / "trades.csv")
    fills = [f for r in days for f in r["fills"]]
    assert len(fills) == len(trades) > 20
    np.testing.assert_allclose([f["shares"] for f in fills], trades["shares"], rtol=1e-12)
    # on a rebalance day the weights and the orders, each order with its idempotency key
    decided = [r for r in days if "orders" in r]
    assert decided and all(o["key"] == f"algorithm:{r['date']}:{o['ticker']}"
                           for r in decided for o in r["orders"])  # fmt: skip


def test_the_journal_is_a_hash_chain_that_shows_an_edit(year, tmp_path):
    root = year[0]
    folder = tmp_path / "copy"
    shutil.copytree(root / "live" / "algorithm", folder)
    live.Journal(folder / live.JOURNAL)  # reads and checks
    lines = (folder / live.JOURNAL).read_text().splitlines()
    edited = json.loads(lines[10])
    edited["row"]["cash"] += 1000.0  # a quiet edit of the books, the line's hash left as it was
    lines[10] = json.dumps(edited, sort_keys=True)
    (folder / live.JOURNAL).write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="line 11"):
        live.Journal(folder / live.JOURNAL)


@pytest.fixture(scope="module")
def ready(tmp_path_factory):
    """A project whose data reach 2011-03-31 (built), and the journal of an uninterrupted live
    run over it from 2011-01-03 (as `03_trade.py --live` leaves it)."""
    root = tmp_path_factory.mktemp("live_ready")
    params = project(root)
    for day in (dt.date(2011, 3, 15), dt.date(2011, 3, 31)):  # two versions: one older
        today = params.replace(sim_clock=day)
        api.query(today)
        api.build(today)
    proc = run_script(root, str(REPO / "03_trade.py"), "--live")
    assert "62 new bar(s), last bar 2011-03-31" in proc.stdout, proc.stdout + proc.stderr
    return root, (root / "live" / "algorithm" / live.JOURNAL).read_bytes()


def _fresh_copy(ready, target: Path) -> Path:
    root, _ = ready
    shutil.copytree(root, target, ignore=shutil.ignore_patterns("live", "results"))
    return target


# the write points of a bar: 2-4 inside the state's atomic write, 5 between the state and the
# journal line, 6 halfway through the line (1: halfway through the "open" line)
REPAIRED = {"write:1": "torn last line", "write:5": "from the saved books",
            "write:6": "torn last line", "write:65": "from the saved books"}  # fmt: skip


@pytest.mark.parametrize("kill", ["heartbeat:1", "heartbeat:40", "write:1", "write:3",
                                  "write:5", "write:6", "write:64", "write:65"])  # fmt: skip
def test_killed_at_any_moment_then_rerun_gives_the_same_journal(ready, tmp_path, kill):
    """SIGKILL in the loop, inside the state's atomic write, between the state and the journal
    line, and halfway through a journal line: the rerun repairs (a torn line cut, a missing line
    journaled from the saved books) and goes on, and the journal is byte for byte the
    uninterrupted one: no bar decided twice, none lost."""
    root = _fresh_copy(ready, tmp_path / "p")
    killed = run_script(root, str(REPO / "03_trade.py"), "--live", check=False,
                        env={"EQUITY_BACKTEST_KILL_AT": kill})  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    again = run_script(root, str(REPO / "03_trade.py"), "--live")
    assert "last bar 2011-03-31" in again.stdout
    assert REPAIRED.get(kill, "") in again.stderr
    assert (root / "live" / "algorithm" / live.JOURNAL).read_bytes() == ready[1]


def test_refusals_and_an_accepted_change(ready, tmp_path):
    root = _fresh_copy(ready, tmp_path / "p")
    shutil.copytree(ready[0] / "live", root / "live")
    # nothing new: nothing done (--once: the same pass, said explicitly)
    again = run_script(root, str(REPO / "03_trade.py"), "--live", "--once")
    assert "no new bar" in again.stdout
    both = run_script(root, str(REPO / "03_trade.py"), "--live", "--once", "--loop", check=False)
    assert both.returncode == 2 and "choose one" in both.stderr
    # a dataset older than the account's last bar
    versions = sorted(p.name for p in (root / "datasets").glob("v*"))
    older = run_script(root, str(REPO / "03_trade.py"), "--live", "--set",
                       f"dataset_version={versions[0]}", check=False)  # fmt: skip
    assert older.returncode == 2 and "before this account's last bar 2011-03-31" in older.stderr
    assert "Traceback" not in older.stderr
    # a changed trading parameter is refused, then accepted and journaled
    changed = run_script(root, str(REPO / "03_trade.py"), "--live", "--set",
                         "commission_rate=0.0009", check=False)  # fmt: skip
    assert changed.returncode == 2 and "commission_rate" in changed.stderr
    assert "--accept-change" in changed.stderr
    accepted = run_script(root, str(REPO / "03_trade.py"), "--live", "--set",
                          "commission_rate=0.0009", "--accept-change")  # fmt: skip
    records = journal(root / "live" / "algorithm")
    assert records[-1]["kind"] == "change" and records[-1]["changed"] == ["commission_rate"]
    assert "no new bar" in accepted.stdout


def test_04_compares_the_live_account_with_its_backtest(ready, tmp_path):
    root = _fresh_copy(ready, tmp_path / "p")
    shutil.copytree(ready[0] / "live", root / "live")
    # parameters.py changed since: the backtest still runs on what the account trades with
    write_parameters_file(root / "parameters.py", **{**LIVE, "rebalance": "monthly",
                                                      "commission_rate": 0.01})  # fmt: skip
    out = run_script(root, str(REPO / "04_evaluate.py"), "--live")
    assert out.stdout.strip().endswith("tearsheet.html")
    report = next((root / "live" / "algorithm" / "reports").iterdir())
    summary = json.loads((report / "live_vs_backtest.json").read_text())
    assert summary["days"] == 62 and summary["largest_value_gap"] < 1e-6
    assert abs(summary["tracking_difference_annual"]) < 1e-12
    table = pd.read_csv(report / "live_vs_backtest.csv")
    assert len(table) == 62 and (report / "backtest" / "tearsheet.html").is_file()
    page = (report / "live.html").read_text()
    assert "data:image/png;base64," in page and "annual return" in page
    live_m, back_m = summary["metrics"]["live"], summary["metrics"]["backtest"]
    assert live_m["annual_return"] == pytest.approx(back_m["annual_return"], rel=1e-9)
    assert "tracking difference" in out.stderr
    # the account's own archive and tear sheet: a paper account's books are the backtest's
    assert (root / out.stdout.strip()).resolve() == (report / "live" / "tearsheet.html").resolve()
    from equity_backtest.engine.archive import read_run

    mine, theirs = read_run(report / "live"), read_run(report / "backtest")
    for name in ("runtime_log.csv", "trades.csv", "cash_ledger.csv", "positions.feather",
                 "target_weights.csv"):  # fmt: skip
        pd.testing.assert_frame_equal(
            mine[name].reset_index(drop=True), theirs[name].reset_index(drop=True),
            check_dtype=False, check_categorical=False, rtol=1e-9, obj=name,
        )  # fmt: skip
    assert mine["run.json"]["status"] == "live" and mine["run.json"]["broker"] == "paper"
    ours = json.loads((report / "live" / "metrics.json").read_text())
    backtested = json.loads((report / "backtest" / "metrics.json").read_text())
    assert ours["portfolio"]["sharpe_ratio"] == pytest.approx(
        backtested["portfolio"]["sharpe_ratio"], rel=1e-9
    )
    assert 'href="live/tearsheet.html"' in page


COLUMNS = {"ticker": "Symbol", "shares": "Qty", "side": "Side", "price": "AvgPrice",
           "commission": "Fees"}  # fmt: skip


def _report(path: Path, fills: list[dict]) -> None:
    """A broker's fill report in its own column names (as live_fill_columns maps them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["Symbol,Side,Qty,AvgPrice,Fees"] + [
        f"{f['ticker']},{'BUY' if f['shares'] > 0 else 'SELL'},{abs(f['shares'])!r},"
        f"{f['price']!r},{f['commission']!r}"
        for f in fills
    ]
    path.write_text("\n".join(rows) + "\n")


def test_the_file_broker_books_what_the_report_says(ready, tmp_path):
    """A person places the orders: the account writes orders/<date>.csv and waits for the
    broker's report in fills/<date>.csv (exit 2 saying where), books its rows as they are, and
    journals each order's implementation shortfall. Fed the paper account's own fills, its books
    equal the paper account's to 1e-9; a partial fill at a worse price shows in the shortfall."""
    root = _fresh_copy(ready, tmp_path / "p")
    paper = {r["date"]: r for r in journal(ready[0] / "live" / "algorithm") if r["kind"] == "day"}
    dates = sorted(paper)
    params = project(root).replace(live_broker="file", live_account="byhand",
                                   live_fill_columns=COLUMNS)  # fmt: skip
    folder = root / "live" / "byhand"
    waits, worse = 0, None
    while True:
        try:
            outcome = live.step(params)
        except Exception as exc:
            assert "waits for the fill report of the orders decided on" in str(exc)
            decided = str(exc).split("decided on ")[1][:10]
            placed = pd.read_csv(folder / "orders" / f"{decided}.csv")
            assert set(placed.columns) >= {"key", "ticker", "side", "shares", "reference_price"}
            nxt = dates[dates.index(decided) + 1]
            fills = [f for f in paper[nxt]["fills"] if f["reason"] == "rebalance"]
            if waits == 1 and fills:  # the second order list: one order half filled, dearer
                worse = dict(
                    fills[0], shares=fills[0]["shares"] / 2, price=fills[0]["price"] * 1.01
                )
                fills = [worse, *fills[1:]]
            _report(folder / "fills" / f"{decided}.csv", fills)
            waits += 1
            continue
        break
    assert outcome.last_day == dt.date(2011, 3, 31) and waits >= 2
    mine = [r for r in journal(folder) if r["kind"] == "day"]
    assert [r["date"] for r in mine] == dates
    shortfalls = [s for r in mine for s in r.get("shortfall", [])]
    hit = [s for s in shortfalls if s["ticker"] == worse["ticker"] and s["unfilled"] != 0]
    assert len(hit) == 1 and hit[0]["filled"] == pytest.approx(worse["shares"])
    assert hit[0]["shortfall"] > 0
    # 04: the shortfall per order beside live against backtest
    report = api.live_report(params)
    table = pd.read_csv(report / "implementation_shortfall.csv")
    assert len(table) == len(shortfalls) and (table["unfilled"].abs() > 0).sum() == 1
    summary = json.loads((report / "live_vs_backtest.json").read_text())
    assert summary["implementation_shortfall"]["unfilled_orders"] == 1
    assert summary["largest_value_gap"] > 0  # the dearer, partial fill: live is not the backtest
    assert (
        summary["metrics"]["live"]["cumulative_return"]
        != summary["metrics"]["backtest"]["cumulative_return"]
    )
    assert worse["ticker"] in (report / "live.html").read_text()
    # its own tear sheet holds what the broker reported: the half fill at the dearer price
    booked = pd.read_csv(report / "live" / "trades.csv")
    row = booked[(booked["ticker"] == worse["ticker"]) & (booked["price"] == worse["price"])]
    assert len(row) == 1 and row["shares"].iloc[0] == pytest.approx(worse["shares"])
    ours = json.loads((report / "live" / "metrics.json").read_text())
    assert ours["portfolio"]["cumulative_return"] == pytest.approx(
        summary["metrics"]["live"]["cumulative_return"], rel=1e-9
    )
    assert (report / "live" / "tearsheet.html").is_file()
    # before the worse fill the books are the paper account's, to 1e-9
    first_worse = next(r["date"] for r in mine if any(s in hit for s in r.get("shortfall", [])))
    for r in mine:
        if r["date"] >= first_worse:
            break
        for column in ("value", "cash", "holdings_value"):
            assert r["row"][column] == pytest.approx(paper[r["date"]]["row"][column], rel=1e-9)


def test_the_file_broker_refuses_a_fill_of_what_was_not_ordered(ready, tmp_path):
    root = _fresh_copy(ready, tmp_path / "p")
    params = project(root).replace(live_broker="file", live_account="byhand",
                                   live_fill_columns=COLUMNS)  # fmt: skip
    with pytest.raises(Exception, match="waits for the fill report") as info:
        live.step(params)
    decided = str(info.value).split("decided on ")[1][:10]
    _report(root / "live" / "byhand" / "fills" / f"{decided}.csv",
            [{"ticker": "NOTORDERED", "shares": 5.0, "price": 10.0, "commission": 1.0}])  # fmt: skip
    with pytest.raises(Exception, match="row 2: 'NOTORDERED' was not ordered"):
        live.step(params)
    proc = run_script(root, str(REPO / "03_trade.py"), "--live", "--set", "live_broker=file",
                      "--set", "live_account=byhand", check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.fixture
def alpaca(monkeypatch):
    pytest.importorskip("alpaca")
    from .alpaca_stand_in import KEY, SECRET, StandIn

    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
    server = StandIn()
    yield server
    server.close()


def test_the_alpaca_broker_sends_each_order_once_and_books_its_fills(ready, tmp_path, alpaca):
    """alpaca-py sends each order with its idempotency key as client_order_id, the account
    waits while any is open, then books the fills Alpaca reports: at the paper account's own
    prices its books are the paper account's to 1e-9. A send cut off (Alpaca down) and rerun
    sends only what Alpaca lacks: every key is accepted exactly once."""
    root = _fresh_copy(ready, tmp_path / "p")
    # Alpaca charges no commission: the reference is a paper account without one
    free = project(root).replace(commission_rate=0.0, commission_min=0.0)
    live.step(free.replace(live_account="paper0"))
    paper = {r["date"]: r for r in journal(root / "live" / "paper0") if r["kind"] == "day"}
    dates = sorted(paper)
    params = free.replace(live_broker="alpaca", live_account="api", live_alpaca_url=alpaca.url)
    exchange, waits = alpaca.exchange, 0
    while True:
        try:
            outcome = live.step(params)
        except Exception as exc:
            if "does not answer" in str(exc):
                continue  # Alpaca was down: run again
            assert "waits for Alpaca to finish the orders decided on" in str(exc), str(exc)
            decided = str(exc).split("decided on ")[1][:10]
            nxt = dates[dates.index(decided) + 1]
            prices = {f["ticker"]: f["price"] for f in paper[nxt]["fills"]}
            exchange.fill(prices)
            waits += 1
            if waits == 1:
                exchange.down = 3  # the next orders' send is cut off after a look-up or two
            continue
        break
    assert outcome.last_day == dt.date(2011, 3, 31) and waits >= 2
    accepted = [k for k in exchange.orders]
    assert len(accepted) == len(set(exchange.posts)) and len(accepted) > 5
    assert all(exchange.posts.count(k) == 1 for k in accepted)  # never POSTed twice
    mine = {r["date"]: r for r in journal(root / "live" / "api") if r["kind"] == "day"}
    assert sorted(mine) == dates
    for date in dates:
        for column in ("value", "cash", "holdings_value"):
            assert mine[date]["row"][column] == pytest.approx(paper[date]["row"][column], rel=1e-9)
    assert all(o["key"] in exchange.orders for r in mine.values() for o in r.get("orders", []))


def test_an_alpaca_send_cut_off_halfway_sends_the_rest_once(alpaca, monkeypatch):
    """Alpaca stops answering after the first order of three was accepted: the rerun looks
    each up by its key and sends only the two it lacks."""
    from equity_backtest.run import live_alpaca

    params = Parameters().replace(live_alpaca_url=alpaca.url)
    trading = live_alpaca.client(params)
    orders = [{"ticker": t, "shares": s, "key": f"acct:2011-01-03:{t}"}
              for t, s in (("AAA", 10.0), ("BBB", -5.5), ("CCC", 3.0))]  # fmt: skip
    alpaca.exchange.fail_at = {3}  # (1: look-up AAA, 2: send AAA, 3: look-up BBB)
    with pytest.raises(Exception, match="does not answer"):
        live_alpaca.send(trading, orders)
    assert list(alpaca.exchange.orders) == ["acct:2011-01-03:AAA"]
    assert live_alpaca.send(trading, orders) == 2
    assert alpaca.exchange.posts == [o["key"] for o in orders]  # each POSTed once
    assert live_alpaca.send(trading, orders) == 0
    held = alpaca.exchange.orders["acct:2011-01-03:BBB"]
    assert held["side"] == "sell" and float(held["qty"]) == 5.5
    monkeypatch.delenv("ALPACA_SECRET_KEY")
    with pytest.raises(Exception, match="ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        live_alpaca.client(params)


def _content(record: dict) -> dict:
    """A journal record without its chain links and the algorithm's path: the loop here is
    given the file by its absolute path, the cron run by the name 03 resolves in the project."""
    return {k: v for k, v in record.items() if k not in ("hash", "prev", "algorithm_file")}


class JumpingClock:
    """A clock that jumps instead of sleeping, and counts what it was asked to wait."""

    def __init__(self, now: str):
        self.now_ = pd.Timestamp(now, tz="UTC")
        self.slept = 0.0

    def now(self) -> pd.Timestamp:
        return self.now_

    def sleep(self, seconds: float) -> None:
        self.now_ += pd.Timedelta(seconds=seconds)
        self.slept += seconds


def test_the_loop_beats_after_each_close_and_trades_as_the_cron_runs_do(ready, tmp_path):
    """`03_trade.py --live --loop`: from a Monday morning, a heartbeat 30 minutes after each
    NYSE close (weekends and holidays skipped), each running 01 (the simulated market's clock at
    that session), 02 and the new bar: the journal's records are the cron-run ones (its first
    25 bars)."""
    from equity_backtest.data import calendars
    from equity_backtest.run import live_loop

    root = tmp_path / "p"
    params = project(root)
    clock, beats = JumpingClock("2011-01-03 09:00"), []
    live_loop.loop(params, clock=clock, beats=25,
                   on_beat=lambda session, outcome: beats.append((session, clock.now())))  # fmt: skip
    want = sessions("2011-01-03", "2011-03-31")[:25]
    assert [b[0] for b in beats] == want
    closes = calendars.closes("XNYS", want[0], want[-1])  # (16:00 New York, in UTC: DST moves it)
    assert [m for _, m in beats] == [c + pd.Timedelta(minutes=30) for c in closes]
    assert {m.hour for _, m in beats} == {21}  # (winter: 21:00 UTC; summer closes are 20:00)
    looped = journal(root / "live" / "algorithm")
    assert sum(r["kind"] == "day" for r in looped) == 25
    cron_run = [json.loads(line) for line in ready[1].decode().splitlines()][: len(looped)]
    assert [_content(r) for r in looped] == [_content(r) for r in cron_run]
    with pytest.raises(Exception, match="'1d' .after each close. or '<N>min'"):
        live_loop.loop(params.replace(live_heartbeat="hourly"), clock=clock, beats=1)


def test_an_intraday_heartbeat_fills_at_the_vendors_latest_prices(tmp_path):
    """live_heartbeat = "10min": the orders decided at a close fill at the next session's first
    heartbeat (09:40 New York) at the simulated market's intraday price then, through the
    engine's broker and cost model; later heartbeats of the session fill nothing again, and the
    close's heartbeat books the fills in the bar. Value is conserved (the engine's check)."""
    from equity_backtest.data import calendars
    from equity_backtest.data.vendors import simulated
    from equity_backtest.data.vendors.simulated import intraday
    from equity_backtest.run import live_loop

    root = tmp_path / "p"
    params = project(root).replace(live_heartbeat="10min")
    clock = JumpingClock("2011-01-03 09:00")
    live_loop.loop(params, clock=clock, beats=6)
    folder = root / "live" / "algorithm"
    days = [r for r in journal(folder) if r["kind"] == "day"]
    assert [r["date"] for r in days] == [
        f"{d:%Y-%m-%d}" for d in sessions("2011-01-03", "2011-01-10")
    ]
    filled = sorted((folder / live.INTRADAY).glob("*.json"))
    assert filled  # the first decision's orders
    settings = simulated.SimulationSettings(24, 8, SIM["sim_start"], SIM["sim_end"], 5)
    prices = simulated.simulate(settings).prices
    for path in filled:
        record = json.loads(path.read_text())
        session = pd.Timestamp(record["session"])
        opened = calendars.schedule("XNYS", session.date(), session.date())["open"].iloc[0]
        assert pd.Timestamp(record["moment"]) == opened + pd.Timedelta(minutes=10)
        rows = prices[prices["date"] == session]
        latest = intraday.prices(rows, 5, "XNYS", opened + pd.Timedelta(minutes=10))
        for fill in record["fills"]:
            assert fill["mid"] == pytest.approx(latest[fill["ticker"]], rel=1e-12)
        booked = next(r for r in days if r["date"] == record["session"])["fills"]
        assert sorted((f["ticker"], f["price"]) for f in booked) == sorted(
            (f["ticker"], f["price"]) for f in record["fills"] if f["shares"]
        )
    # the open's own price is not what they filled at
    first = json.loads(filled[0].read_text())
    opens = prices[prices["date"] == pd.Timestamp(first["session"])].set_index("ticker")["open"]
    assert any(abs(f["mid"] - opens[f["ticker"]]) > 1e-9 for f in first["fills"])


def test_the_investor_records_its_orders_and_their_fills(ready, tmp_path):
    """`python -m equity_backtest.investor ... --record`: the plan is journaled with its orders
    (idempotency keys, planned prices) and written to orders/<date>.csv; asked again the same
    day it records nothing new; a later plan waits for the previous one's fill report, then
    journals the fills with each order's shortfall, which 04 --live reports."""
    root = _fresh_copy(ready, tmp_path / "p")
    versions = sorted(p.name for p in (root / "datasets").glob("v*"))
    ask = ["-m", "equity_backtest.investor", "--theme", "market_cap", "--stocks", "5",
           "--invest", "10000", "--record"]  # fmt: skip
    first = run_script(root, *ask, "--set", f"dataset_version={versions[0]}")
    assert "recorded in live/investor_market_cap" in first.stderr
    again = run_script(root, *ask, "--set", f"dataset_version={versions[0]}")
    assert "already recorded" in again.stderr
    folder = root / "live" / "investor_market_cap"
    (plan,) = [r for r in journal(folder) if r["kind"] == "plan"]
    placed = pd.read_csv(folder / "orders" / f"{plan['date']}.csv")
    assert len(placed) == len(plan["orders"]) > 3 and set(placed["side"]) == {"buy"}
    # the next plan waits for the first one's fills
    waiting = run_script(root, *ask, check=False)
    assert waiting.returncode == 2 and f"fills/{plan['date']}.csv" in waiting.stderr
    _report(folder / "fills" / f"{plan['date']}.csv", [
        {"ticker": o["ticker"], "shares": o["shares"], "price": o["reference_price"] * 1.002,
         "commission": 1.0} for o in plan["orders"]
    ])  # fmt: skip
    later = run_script(root, *ask, "--set", "live_fill_columns=" + repr(COLUMNS))
    assert "recorded in" in later.stderr
    kinds = [r["kind"] for r in journal(folder)]
    assert kinds == ["plan", "fills", "plan"]
    fills = next(r for r in journal(folder) if r["kind"] == "fills")
    assert all(s["shortfall"] > 0 and s["unfilled"] == 0 for s in fills["shortfall"])
    out = run_script(root, str(REPO / "04_evaluate.py"), "--live", "--set",
                     "live_account=investor_market_cap")  # fmt: skip
    table = pd.read_csv(root / out.stdout.strip().splitlines()[-1])
    assert len(table) == len(plan["orders"]) and (table["shortfall"] > 0).all()


@pytest.mark.parametrize("kill", ["write:4", "write:5"])
def test_a_file_broker_run_killed_then_rerun_gives_the_same_journal(ready, tmp_path, kill):
    """Killed between the books and the journal line of the bar that books a fill report (or
    halfway through that line): the rerun journals the bar from the saved books with its
    shortfall, and the journal is byte for byte the uninterrupted one."""
    paper = {r["date"]: r for r in journal(ready[0] / "live" / "algorithm") if r["kind"] == "day"}
    dates = sorted(paper)
    sets = ["--set", "live_broker=file", "--set", "live_account=byhand", "--set",
            "live_fill_columns=" + repr(COLUMNS)]  # fmt: skip
    journals = []
    for name, kills in (("whole", []), ("killed", [kill])):
        root = _fresh_copy(ready, tmp_path / name)
        first = run_script(root, str(REPO / "03_trade.py"), "--live", *sets, check=False)
        assert first.returncode == 2 and "waits for the fill report" in first.stderr
        decided = first.stderr.split("decided on ")[1][:10]
        nxt = dates[dates.index(decided) + 1]
        _report(root / "live" / "byhand" / "fills" / f"{decided}.csv",
                [f for f in paper[nxt]["fills"] if f["reason"] == "rebalance"])  # fmt: skip
        for k in kills:
            died = run_script(root, str(REPO / "03_trade.py"), "--live", *sets, check=False,
                              env={"EQUITY_BACKTEST_KILL_AT": k})  # fmt: skip
            assert died.returncode == -9
        last = run_script(root, str(REPO / "03_trade.py"), "--live", *sets, check=False)
        journals.append((root / "live" / "byhand" / live.JOURNAL).read_bytes())
    said = {"write:4": "from the saved books", "write:5": "torn last line"}[kill]
    assert said in last.stderr, last.stderr
    assert journals[0] == journals[1]
    assert b'"shortfall"' in journals[1]
