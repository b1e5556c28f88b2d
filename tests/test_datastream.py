"""D14 Datastream vendor: LSEG's DatastreamPy against a stand-in web service on loopback
(tests/dsws_stand_in.py), so the login, the requests and the JSON are the package's and DSWS's,
end to end; the screens for Datastream's known traps, unit by unit and through 01-04."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import datalog, datasets
from equity_backtest.data.vendors import datastream_screens as screens
from equity_backtest.data.vendors import simulated

from .conftest import REPO, free_port, run_script, write_parameters_file
from .dsws_stand_in import LIST, PASSWORD, USER, Market, StandIn

pytest.importorskip("DatastreamPy")
pytest.importorskip("trustme")

# 50 companies, 20 in the list: a split, two deaths (one without "DEAD" in its name)
SETTINGS = simulated.SimulationSettings(50, 20, dt.date(2011, 1, 1), dt.date(2012, 12, 31), 1)
DS = dict(
    source="datastream",
    index=LIST,
    query_start=SETTINGS.start,
    query_end=SETTINGS.end,
    start=dt.date(2011, 6, 1),
    end=SETTINGS.end,
    ds_retry_wait_s=0.0,
    ds_chunk_tickers=4,
    ds_chunk_fields=5,
)
CREDENTIALS = {"DSWS_USERNAME": USER, "DSWS_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    market = Market(SETTINGS)
    server = StandIn(market, tmp_path_factory.mktemp("dsws"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def traps(tmp_path_factory):
    server = StandIn(Market(SETTINGS, traps=True), tmp_path_factory.mktemp("dsws_traps"))
    yield server
    server.close()


def new_project(root: Path, server: StandIn, url: str | None = None, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = server.config_file(root / "dsws.ini", url)
    write_parameters_file(root / "parameters.py", **{**DS, "ds_config": str(config), **kw})
    return root


def query(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_script(root, str(REPO / "01_query_vendor.py"), *args, check=False,
                      env={**CREDENTIALS, **(env or {})})  # fmt: skip


def content(root: Path) -> dict[tuple[str, str], bytes]:
    out = {}
    for name, path in datalog.list_logs(root / "datalog"):
        assert (name.data_type, name.label) not in out, f"{name} logged twice"
        out[(name.data_type, name.label)] = path.read_bytes()
    return out


def tables(root: Path) -> dict[str, pd.DataFrame]:
    datasets.build(root / "datalog", root / "datasets")
    return datasets.load_tables(root / "datasets")[1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, service) -> Path:
    root = new_project(tmp_path_factory.mktemp("ds_full"), service)
    service.on_call(None)
    proc = query(root)
    assert proc.returncode == 0, proc.stderr
    return root


def _simulated_project(root: Path, market: Market, lists_from: Path) -> Path:
    """The simulated market's own datalog under Datastream's codes, with each delisting paying
    the last price (Datastream has no delisting return) and the month-end lists Datastream
    gives (the simulated lists are dated the month's first day): the data Datastream gives."""
    sim = root / "simlog"
    simulated.query(SETTINGS, sim)
    logs = list(datalog.list_logs(sim))
    closes = {
        n.label: datalog.read_log(p, n).set_index("date")["close"]
        for n, p in logs
        if n.data_type == "ticker_market_data"
    }
    for name, path in logs:
        if name.data_type == "constituent_list":
            continue
        frame = datalog.read_log(path, name)
        if name.data_type == "corporate_actions":
            gone = frame["action"] == "delisting"
            last = closes[name.label]
            frame.loc[gone, "value"] = [
                last[last.index < d].iloc[-1] for d in frame.loc[gone, "date"]
            ]
        if "ticker" in frame:
            frame["ticker"] = frame["ticker"].map(lambda t: market.code.get(t, t))
        label = market.code.get(name.label, name.label)
        datalog.write_log(
            root / "datalog",
            datalog.LogName(name.timestamp, "simulated", name.data_type, label),
            frame,
        )
    for name, path in datalog.list_logs(lists_from / "datalog"):
        if name.data_type == "constituent_list":
            renamed = datalog.LogName(name.timestamp, "simulated", name.data_type, name.label)
            datalog.write_log(root / "datalog", renamed, datalog.read_log(path, name))
    write_parameters_file(root / "parameters.py", **{**DS, "source": "simulated"})
    return root


def _run(root: Path) -> pd.DataFrame:
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    for script in ("02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        run_script(root, str(REPO / script))
    runs = [p for p in (root / "results").iterdir() if p.is_dir() and p.name[0] != "."]
    log = pd.read_csv(sorted(runs)[-1] / "runtime_log.csv", parse_dates=["date"])
    return log.set_index("date")[["value", "cash", "dividends"]]


def test_the_backtest_on_datastream_data_is_the_simulated_one(uninterrupted, service, tmp_path):
    """01 -> 04 on the stand-in (holidays and deaths padded, P adjusted, VO in thousands, MV in
    millions, a renamed company) gives the simulated backtest's values, cash and dividends to
    1e-9, where the data are the same (a delisting pays the last price: Datastream has none)."""
    market = service.handler.market
    root = tmp_path / "ds"
    shutil.copytree(uninterrupted, root)
    ours = _run(root)
    theirs = _run(_simulated_project(tmp_path / "sim", market, uninterrupted))
    assert len(ours) > 300 and ours.index.equals(theirs.index)
    # (cash and dividends to 1e-9 of the portfolio's value: cash is a small remainder)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=1e-9 * 1e6)
    assert ours["dividends"].sum() > 0

    built = datasets.load_tables(root / "datasets")[1]
    ca = built["corporate_actions"].assign(ticker=lambda f: f["ticker"].astype(str))
    kinds = ca.groupby("action", observed=True).size().to_dict()
    assert kinds["split"] == 1 and kinds["delisting"] == 2 and kinds["padded"] == 2
    assert kinds["holiday_padding"] == len(market.members_ever)
    # both deaths end at their last trade: from the NAME's date, and from the padding alone
    unmarked = market.code[market.dead_unmarked]
    assert unmarked in set(ca.loc[ca["action"] == "padded", "ticker"])
    # the renamed company: one code, its whole history, today's name and mnemonic
    renamed = market.code[market.renamed]
    meta = built["metadata"].set_index(built["metadata"]["ticker"].astype(str))
    assert (
        meta.loc[renamed, "name"] == "NEWCO HOLDINGS" and meta.loc[renamed, "mnemonic"] == "U:NEWCO"
    )
    assert set(meta["exchange_mnemonic"]) == {"NYS"}
    mk = built["market"][built["market"]["ticker"].astype(str) == renamed]
    up = market.series[renamed]["UP"]
    assert mk["date"].min() == market.weekdays[np.flatnonzero(~np.isnan(up))[0]] and len(mk) > 150
    # Worldscope items: each period's figure, public 90 days after the period ends
    fund = built["fundamentals"]
    fund = fund[(fund["ticker"].astype(str) == renamed) & (fund["metric"] == "revenue")]
    sim = market.quarterly[renamed]["WC01001"]
    sim = sim[
        (sim.index >= pd.Timestamp(SETTINGS.start)) & (sim.index <= pd.Timestamp(SETTINGS.end))
    ]
    assert len(fund) == len(sim) >= 3
    np.testing.assert_allclose(
        fund.sort_values("period_end")["value"], sim.sort_index(), rtol=1e-12
    )
    assert ((fund["announcement_date"] - fund["period_end"]) == pd.Timedelta(days=90)).all()
    report = json.loads(next((root / "datasets").glob("v*/quality_report.json")).read_text())
    source = report["sources"][0]
    assert set(source["vendor_screens"]) == {"holiday_padding", "padded"}
    assert "restated" in source["fundamentals_vintage"]
    assert source["market_cap_units"]["consistent"]


def test_traps_are_caught_named_and_counted(traps, tmp_path):
    """A +200% spike reversed the next day, a penny stock, an RI without dividends and a session
    with no answer: each is in the quality report under its screen, with the ticker; the prices
    are kept as Datastream gave them (nothing changed silently)."""
    market = traps.handler.market
    root = new_project(tmp_path / "t", traps)
    traps.on_call(None)
    proc = query(root)
    assert proc.returncode == 0, proc.stderr
    assert "Datastream screens (counted in the quality report)" in proc.stderr
    out = run_script(root, str(REPO / "02_build_datasets.py"))
    assert "vendor screens:" in out.stdout + out.stderr
    built = datasets.load_tables(root / "datasets")[1]
    report = json.loads(next((root / "datasets").glob("v*/quality_report.json")).read_text())
    found = report["sources"][0]["vendor_screens"]
    who = {k: {e["ticker"] for e in v["examples"]} for k, v in found.items()}
    assert found["reversal"]["count"] == 1 and who["reversal"] == {market.traps["spike"]}
    assert found["ri_mismatch"]["count"] == 1 and who["ri_mismatch"] == {market.traps["ri"]}
    assert who["low_price"] == {market.traps["penny"]}
    assert found["ri_mismatch"]["examples"][0]["value"] > 0.005
    mk = built["market"].assign(ticker=lambda f: f["ticker"].astype(str))
    spike = mk[mk["ticker"] == market.traps["spike"]].set_index("date")["close"]
    assert (spike.pct_change() > 1.5).sum() == 1  # kept, and reported
    hole = mk[mk["ticker"] == market.traps["hole"]]
    assert market.traps["hole_day"] not in set(hole["date"])
    # no MV: the market cap is UP x NOSH, the simulated market's own
    assert who["market_cap_from_shares"] == {market.traps["no_mv"]}
    assert 15 <= found["market_cap_from_shares"]["value_sum"] <= 20  # (20 weekdays, holidays out)
    gaps = report["sources"][0]["gaps"]
    assert gaps["tickers"] >= 1 and gaps["missing_days"] >= 1


def test_killed_mid_query_then_rerun_gives_the_uninterrupted_datalog(
    uninterrupted, service, tmp_path
):
    full = content(uninterrupted)
    for die_after in (3, 25, 60):
        root = new_project(tmp_path / f"killed_{die_after}", service)
        env = {**os.environ, "PYTHONPATH": str(REPO), **CREDENTIALS}
        proc = subprocess.Popen([sys.executable, str(REPO / "01_query_vendor.py")], cwd=root,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        service.on_call(lambda n, p=proc, k=die_after: n >= k and p.send_signal(signal.SIGKILL))
        proc.communicate(timeout=300)
        service.on_call(None)
        assert proc.returncode == -9
        partial = content(root)
        assert len(partial) < len(full)
        assert all(full[key] == data for key, data in partial.items())  # no half-written log
        resumed = query(root)
        assert resumed.returncode == 0, resumed.stderr
        assert content(root) == full


def test_transient_failures_are_retried(uninterrupted, service, tmp_path):
    root = new_project(tmp_path / "flaky", service)
    service.on_call(None, fail={2, 3, 9})
    proc = query(root)
    service.on_call(None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("retry 1 of 4") == 2 and "retry 2 of 4" in proc.stderr
    assert content(root) == content(uninterrupted)


def test_no_service_a_refused_login_or_no_credentials_is_exit_3(service, tmp_path):
    cases = {
        "down": ({}, f"https://127.0.0.1:{free_port()}", "does not answer"),
        "refused": ({"DSWS_PASSWORD": "wrong"}, None, "refused the login"),
        "none": ({"DSWS_USERNAME": None, "DSWS_PASSWORD": None}, None, "needs credentials"),
    }
    service.on_call(None)
    for name, (env, url, said) in cases.items():
        root = new_project(tmp_path / name, service, url)
        if name == "none":
            write_parameters_file(root / "parameters.py", **DS)  # and no ds_config
        proc = query(root, env=env)
        assert proc.returncode == 3, (name, proc.stderr)
        assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not list((root / "datalog").glob("*")) if (root / "datalog").exists() else True


def test_a_month_without_its_list_after_the_first_is_an_error_naming_it(service, tmp_path):
    service.handler.market.missing_months.add(f"{LIST}0611")
    try:
        proc = query(new_project(tmp_path / "gap", service))
    finally:
        service.handler.market.missing_months.clear()
    assert proc.returncode == 3
    assert f"no members of {LIST}0611" in proc.stderr and "June 2011" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_screens_unit_by_unit():
    """Padding after a death is cut at the last trade (by the NAME's date or by the run), a
    change of UP/P is a split snapped to its ratio, UDDE counts only on its own ex-date."""
    days = pd.bdate_range("2020-01-01", periods=40)
    sessions = days.delete(10)  # one holiday
    up = np.r_[np.linspace(10, 20, 30), np.full(10, 20.0)]
    frame = pd.DataFrame({
        "unadjusted_close": up, "close": np.r_[up[:15] / 2.0004, up[15:]],
        "volume": np.r_[np.ones(30), np.full(10, np.nan)], "market_value": 1.0,
        "dividend": np.r_[np.full(20, np.nan), np.full(20, 0.5)],
        "ex_date": [pd.NaT] * 20 + [days[20]] * 20,
    }, index=days)  # fmt: skip
    rules = screens.Rules(min_padding_days=5)
    out = screens.screen(frame, sessions, rules)
    acts = {a: (d, v) for d, a, v in out.actions.itertuples(index=False)}
    assert acts["split"] == (days[15], 2.0)  # 2.0004 rounded prices -> 2:1
    assert acts["dividend"] == (days[20], 0.5)
    assert acts["padded"] == (days[30], 10.0) and acts["delisting"] == (days[30], 20.0)
    assert acts["holiday_padding"] == (days[10], 1.0)
    assert out.market["date"].iloc[-1] == days[29] and len(out.market) == 29
    assert out.market["volume"].iloc[0] == 1000.0 and out.market["market_cap"].iloc[0] == 1e6
    # the NAME's delisting date wins over the run length
    dead = screens.delisted_on("ACME CORP DEAD - DELIST.05/02/20")
    assert dead == pd.Timestamp("2020-02-05")
    cut = screens.screen(frame, sessions, screens.Rules(min_padding_days=50), dead)
    assert cut.market["date"].iloc[-1] == dead
    assert screens.delisted_on("ACME CORP") is None
    assert screens.snap_ratio(1.4999, 0.01) == 1.5 and screens.snap_ratio(1.0731, 0.001) == 1.0731


def test_credentials_from_dotenv_and_no_package_is_exit_3(uninterrupted, service, tmp_path):
    """DSWS_USERNAME and DSWS_PASSWORD in a .env beside parameters.py are enough (01 under cron
    has no shell profile); without DatastreamPy, 01 says what to install."""
    service.on_call(None)
    root = new_project(tmp_path / "dotenv", service)
    (root / ".env").write_text(f"DSWS_USERNAME={USER}\nDSWS_PASSWORD={PASSWORD}\n")
    proc = query(root, env={"DSWS_USERNAME": None, "DSWS_PASSWORD": None})
    assert proc.returncode == 0, proc.stderr
    assert content(root) == content(uninterrupted)

    shim = tmp_path / "shim" / "DatastreamPy"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('not installed')\n")
    root = new_project(tmp_path / "nopkg", service)
    proc = query(root, env={"PYTHONPATH": os.pathsep.join([str(shim.parent), str(REPO)])})
    assert proc.returncode == 3 and "pip install 'equity_backtest[datastream]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_dates_when_asked_date_the_fundamentals(service, tmp_path):
    """With ds_report_date_field, each period is public on the date Datastream gives for it (the
    simulated market's announcement dates), not 90 days after its end."""
    from .dsws_stand_in import REPORT_DATE

    service.on_call(None)
    root = new_project(tmp_path / "rd", service, ds_report_date_field=REPORT_DATE)
    assert query(root).returncode == 0
    fund = tables(root)["fundamentals"]
    fund = fund[fund["metric"] == "revenue"].assign(ticker=lambda f: f["ticker"].astype(str))
    market = service.handler.market
    for code, rows in fund.groupby("ticker"):
        want = market.quarterly[code][REPORT_DATE]
        got = rows.set_index("period_end")["announcement_date"]
        pd.testing.assert_series_equal(
            got, want.loc[got.index], check_names=False, check_freq=False
        )
    assert len(fund) > 50


def test_monthly_bars_are_the_screened_days_month_by_month(uninterrupted, service, tmp_path):
    """ds_frequency = "monthly": month-end bars made from the screened days (the month's first
    open, highest high, lowest low, last close and market cap, summed volume), the same actions;
    02 -> 04 run on them as monthly bars."""
    service.on_call(None)
    root = new_project(tmp_path / "m", service, ds_frequency="monthly")
    assert query(root).returncode == 0
    monthly = tables(root)
    daily = datasets.load_tables(uninterrupted / "datasets")[1] if (
        uninterrupted / "datasets").exists() else tables(uninterrupted)  # fmt: skip
    for code, rows in daily["market"].groupby(daily["market"]["ticker"].astype(str)):
        want = screens.month_end_bars(rows.drop(columns=["source", "ticker", "log_ts"],
                                                errors="ignore").reset_index(drop=True))  # fmt: skip
        got = monthly["market"][monthly["market"]["ticker"].astype(str) == code]
        got = got[want.columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert len(monthly["corporate_actions"]) == len(daily["corporate_actions"])
    _run(root)
    info = json.loads(next(p for p in (root / "results").iterdir() if p.is_dir()).joinpath(
        "run.json").read_text())  # fmt: skip
    assert info["bar_frequency"] == "monthly"
