"""D3 Bloomberg vendor: the real xbbg package against a recorded terminal (tests/terminal/blpapi),
so request building, chunking, retry, resume and logging are ours and xbbg's, end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from equity_backtest.data import datalog, datasets
from equity_backtest.data.vendors import simulated

from .conftest import REPO, run_script, write_parameters_file

pytest.importorskip("xbbg")
TERMINAL = REPO / "tests" / "terminal"
sys.path.insert(0, str(TERMINAL))
from record import INDEX, make_recording  # noqa: E402

sys.path.remove(str(TERMINAL))

SETTINGS = simulated.SimulationSettings(30, 10, dt.date(2011, 1, 1), dt.date(2012, 12, 31), 11)
BBG = dict(
    source="bloomberg",
    index=INDEX,
    query_start=SETTINGS.start,
    query_end=SETTINGS.end,
    start=dt.date(2011, 6, 1),
    end=SETTINGS.end,
    bbg_retry_wait_s=0.0,
    bbg_chunk_tickers=4,
    bbg_chunk_fields=4,
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("terminal") / "recording.json"
    path.write_text(json.dumps(make_recording(SETTINGS)))
    return path


def query(root: Path, recording: Path | None, *args: str, **env: str):
    """01 as a user runs it, with the recorded terminal standing in for Bloomberg's SDK."""
    environ = {
        "PYTHONPATH": os.pathsep.join([str(TERMINAL), str(REPO)]),
        "BLPAPI_REQUEST_LOG": str(root / "requests.jsonl"),
        "BLPAPI_RECORDING": None if recording is None else str(recording),
        **env,
    }
    return run_script(root, str(REPO / "01_query_vendor.py"), *args, check=False, env=environ)


def new_project(root: Path, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_parameters_file(root / "parameters.py", **{**BBG, **kw})
    return root


def content(root: Path) -> dict[tuple[str, str], bytes]:
    """The datalog as (data type, label) -> bytes: what was logged, whatever the timestamps."""
    out = {}
    for name, path in datalog.list_logs(root / "datalog"):
        assert (name.data_type, name.label) not in out, f"{name} logged twice"
        out[(name.data_type, name.label)] = path.read_bytes()
    return out


def requests(root: Path) -> list[dict]:
    path = root / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, recording) -> Path:
    root = new_project(tmp_path_factory.mktemp("bbg_full"))
    proc = query(root, recording)
    assert proc.returncode == 0, proc.stderr
    return root


def test_datalog_builds_into_the_simulated_shapes(uninterrupted, tmp_path):
    """Acceptance 1: 02 builds the Bloomberg datalog into the same tables, columns and dtypes as
    the simulated path, with the simulated market's own numbers for every index member."""
    datasets.build(uninterrupted / "datalog", tmp_path / "bbg")
    simulated.query(SETTINGS, tmp_path / "sim_log")
    datasets.build(tmp_path / "sim_log", tmp_path / "sim")
    _, bbg = datasets.load_tables(tmp_path / "bbg")
    _, sim = datasets.load_tables(tmp_path / "sim")
    assert set(bbg) == set(sim)
    for table in sim:
        if table == "metadata":  # Bloomberg adds the permanent id and a dead security's last day
            extra = [c for c in bbg[table].columns if c not in sim[table].columns]
            assert extra == ["figi", "inactive_date"]
            bbg[table] = bbg[table].drop(columns=extra)
        assert list(bbg[table].columns) == list(sim[table].columns), table
        if table == "regimes":  # the simulated market's own episodes: no Bloomberg counterpart
            assert bbg[table].empty and not sim[table].empty
            continue
        assert bbg[table].dtypes.astype(str).tolist() == sim[table].dtypes.astype(str).tolist()
    members = set(bbg["constituents"]["ticker"].astype(str))
    assert members == {t + " US" for t in sim["constituents"]["ticker"].astype(str).unique()}
    for table, keys in (("market", ["date"]), ("fundamentals", ["period_end", "metric"])):
        b = bbg[table].assign(ticker=bbg[table]["ticker"].astype(str).str.removesuffix(" US"))
        s = sim[table][sim[table]["ticker"].astype(str).isin(b["ticker"].unique())]
        s = s.assign(ticker=s["ticker"].astype(str))
        cols = [c for c in b.columns if c not in ("source", "log_ts")]
        b = b[cols].sort_values(["ticker", *keys]).reset_index(drop=True)
        s = s[cols].sort_values(["ticker", *keys]).reset_index(drop=True)
        pd.testing.assert_frame_equal(b, s, check_categorical=False, rtol=1e-6)
    # dividends and splits come through DVD_HIST_ALL; delistings have no Bloomberg log
    sim_ca = sim["corporate_actions"]
    sim_ca = sim_ca[sim_ca["action"].astype(str) != "delisting"]
    sim_ca = sim_ca[sim_ca["ticker"].astype(str).isin({m.removesuffix(" US") for m in members})]
    assert len(bbg["corporate_actions"]) == len(sim_ca) > 0


def test_pipeline_runs_end_to_end_on_bloomberg_data(uninterrupted, tmp_path):
    import shutil

    root = new_project(tmp_path / "p")
    shutil.copytree(uninterrupted / "datalog", root / "datalog")
    for script in ("02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        shutil.copy(REPO / script, root / script)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    run_script(root, "02_build_datasets.py")
    run_script(root, "03_trade.py")
    out = run_script(root, "04_evaluate.py")
    assert "tearsheet.html" in out.stdout


def test_requests_are_chunked_by_tickers_and_fields(uninterrupted):
    asked = requests(uninterrupted)
    hist = [r for r in asked if r["operation"] == "HistoricalDataRequest"]
    assert hist and all(len(r["securities"]) <= 4 and len(r["fields"]) <= 4 for r in hist)
    daily = [r for r in hist if r.get("periodicitySelection", "DAILY") == "DAILY"]
    fields = {f for r in daily for f in r["fields"]}
    assert fields == {"PX_OPEN", "PX_HIGH", "PX_LOW", "PX_LAST", "PX_VOLUME", "CUR_MKT_CAP"}
    # raw prices: all four adjustment flags sent false, DPDF's included
    flags = ("adjustmentNormal", "adjustmentAbnormal", "adjustmentSplit", "adjustmentFollowDPDF")
    assert all(r.get(f) is False for r in daily for f in flags)
    # fundamentals as originally reported, on fiscal periods
    quarterly = [r for r in hist if r.get("periodicitySelection") == "QUARTERLY"]
    assert quarterly and all(
        r.get("periodicityAdjustment") == "FISCAL" and r["overrides"].get("FILING_STATUS") == "OR"
        for r in quarterly
    )
    members = [r for r in asked if r["overrides"].get("END_DATE_OVERRIDE")]
    assert len(members) == 24 and all(r["securities"] == [INDEX] for r in members)
    assert {r["overrides"]["END_DATE_OVERRIDE"] for r in members} >= {"20110131", "20121231"}


def test_interrupted_then_resumed_equals_uninterrupted(uninterrupted, recording, tmp_path):
    """Acceptance 1: killed (SIGKILL) mid-query at several points, then rerun: the same datalog,
    each label logged once, and the rerun does not ask again for what was logged."""
    full = content(uninterrupted)
    n_full = len(requests(uninterrupted))
    for die_after in (3, 30, n_full - 2):
        root = new_project(tmp_path / f"killed_{die_after}")
        killed = query(root, recording, BLPAPI_DIE_AFTER=str(die_after))
        assert killed.returncode == -9, killed.stderr
        partial = content(root)
        assert len(partial) < len(full)
        assert all(full[key] == data for key, data in partial.items())  # no half-written log
        (root / "requests.jsonl").unlink()
        resumed = query(root, recording)
        assert resumed.returncode == 0, resumed.stderr
        assert content(root) == full
        # member lists and finished tickers are not asked again
        assert len(requests(root)) <= n_full - sum(
            1 for key in partial if key[0] == "constituent_list"
        )


def test_transient_failures_are_retried_with_backoff(recording, uninterrupted, tmp_path):
    root = new_project(tmp_path / "flaky")
    proc = query(root, recording, BLPAPI_FAIL_SENDS="2,3,20")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("retry 1 of 4") == 2 and "retry 2 of 4" in proc.stderr
    assert content(root) == content(uninterrupted)


def test_retries_exhausted_exit_3_and_keep_what_was_logged(recording, tmp_path):
    root = new_project(tmp_path / "down", bbg_retries=2)
    proc = query(root, recording, BLPAPI_FAIL_SENDS=",".join(str(k) for k in range(5, 60)))
    assert proc.returncode == 3
    assert "did not answer" in proc.stderr and "after 3 tries" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(content(root)) == 4  # the four member lists that were answered stay logged


def test_rerun_asks_nothing_and_force_asks_again(uninterrupted, recording, tmp_path):
    import shutil

    root = new_project(tmp_path / "again")
    shutil.copytree(uninterrupted / "datalog", root / "datalog")
    proc = query(root, recording)
    assert proc.returncode == 0 and requests(root) == []
    assert "0 logfiles written" in proc.stderr
    before = len(list((root / "datalog").iterdir()))
    proc = query(root, recording, "--force")
    assert proc.returncode == 0
    assert len(requests(root)) == len(requests(uninterrupted))
    assert len(list((root / "datalog").iterdir())) == 2 * before  # new logs; old ones untouched


def test_no_terminal_is_one_message_exit_3_and_nothing_written(tmp_path):
    root = new_project(tmp_path / "none")
    proc = query(root, None)
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "no Bloomberg terminal answers" in errors[0]
    assert not list((root / "datalog").glob("*.csv"))


@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("blpapi") is not None,
    reason="Bloomberg's SDK is installed here",
)
def test_missing_sdk_is_exit_3_with_what_to_install(tmp_path):
    root = new_project(tmp_path / "nosdk")
    proc = run_script(root, str(REPO / "01_query_vendor.py"), check=False)
    assert proc.returncode == 3
    assert "blpapi" in proc.stderr and "Traceback" not in proc.stderr


def _sim_tables(tmp_path: Path) -> dict[str, pd.DataFrame]:
    simulated.query(SETTINGS, tmp_path / "sim_log")
    datasets.build(tmp_path / "sim_log", tmp_path / "sim")
    return datasets.load_tables(tmp_path / "sim")[1]


def test_a_terminal_s_quirks_are_asked_around_or_counted(tmp_path):
    """On a terminal with a restated quarter, a special dividend, a stock dividend, a spin-off,
    a rights issue, a split stock whose raw prices need every adjustment flag off, and a member
    whose ticker no longer resolves: the original quarter is logged (FILING_STATUS = OR), prices
    are raw, the special cash is paid, the stock dividend is a share ratio, the spin-off and the
    rights are logged unapplied and counted, and the dead member is a warning naming it."""
    record = make_recording
    path = tmp_path / "quirks.json"
    path.write_text(json.dumps(record(SETTINGS, quirks=True)))
    root = new_project(tmp_path / "q")
    proc = query(root, path)
    assert proc.returncode == 0, proc.stderr
    datasets.build(root / "datalog", root / "datasets")
    _, bbg = datasets.load_tables(root / "datasets")
    sim = _sim_tables(tmp_path)
    members = sorted(set(sim["constituents"]["ticker"].astype(str)))

    # the original quarter, not the restated one
    fund = bbg["fundamentals"].assign(ticker=bbg["fundamentals"]["ticker"].astype(str))
    want = sim["fundamentals"].assign(ticker=sim["fundamentals"]["ticker"].astype(str))
    key = ["period_end", "metric"]
    mine = fund[(fund["ticker"] == members[0] + " US") & (fund["metric"] == "revenue")]
    theirs = want[(want["ticker"] == members[0]) & (want["metric"] == "revenue")]
    pd.testing.assert_series_equal(
        mine.sort_values(key)["value"].reset_index(drop=True),
        theirs.sort_values(key)["value"].reset_index(drop=True), rtol=1e-9,
    )  # fmt: skip

    # raw prices for every member with a split (the terminal adjusts unless told not to)
    market = bbg["market"].assign(
        ticker=bbg["market"]["ticker"].astype(str).str.removesuffix(" US")
    )
    sim_mk = sim["market"].assign(ticker=sim["market"]["ticker"].astype(str))
    splits = sim["corporate_actions"][sim["corporate_actions"]["action"].astype(str) == "split"]
    split_tickers = (set(splits["ticker"].astype(str)) & set(market["ticker"])) | {members[1]}
    for t in split_tickers:
        got = market[market["ticker"] == t].set_index("date")["close"]
        exp = sim_mk[sim_mk["ticker"] == t].set_index("date")["close"]
        pd.testing.assert_series_equal(got, exp.loc[got.index], check_names=False, rtol=1e-6)

    # capital changes: cash and share ratios applied, the rest logged unapplied and counted
    ca = bbg["corporate_actions"].assign(ticker=bbg["corporate_actions"]["ticker"].astype(str))
    second = ca[ca["ticker"] == members[1] + " US"]
    assert (second["action"].astype(str) == "split").any() and 1.05 in set(second["value"])
    assert set(second["action"].astype(str)) >= {"dividend", "split", "rights"}
    report = json.loads(next((root / "datasets").glob("v*/quality_report.json")).read_text())
    counted = report["sources"][0]["unapplied_distributions"]
    assert {k: v["count"] for k, v in counted.items()} == {"rights": 1}
    # the spin-off, valued from its price factor (0.92): 8% of the raw close before it
    recorded = json.loads(path.read_text())["reference"][members[1] + " US Equity"]
    spin = next(r for r in recorded["DVD_HIST_ALL"] if r["Dividend Type"] == "Spinoff")
    spin_day = pd.Timestamp(spin["Ex-Date"])
    before = market[(market["ticker"] == members[1]) & (market["date"] < spin_day)]
    paid = second[(second["date"] == spin_day) & (second["action"].astype(str) == "dividend")]
    assert paid["value"].tolist() == pytest.approx([0.08 * before["close"].iloc[-1]], rel=1e-9)
    asked = [r for r in requests(root) if "EQY_DVD_ADJUST_FACT" in r.get("fields", [])]
    assert [r["securities"] for r in asked] == [[members[1] + " US Equity"]]  # (only there)
    # units normalised at the boundary: statement items and shares came in millions
    units = report["sources"][0]["market_cap_units"]
    assert units["checked"] > 50 and units["consistent"], units
    assert "not applied (counted in the quality report): 1 Rights Issue\n" in proc.stderr

    # every member's permanent id (FIGI) beside its ticker; a dead one's inactive date
    meta = bbg["metadata"].set_index(bbg["metadata"]["ticker"].astype(str))
    assert meta["figi"].astype(str).str.startswith("BBG").sum() == len(meta) - 1  # (one is gone)
    dead = sim["corporate_actions"][sim["corporate_actions"]["action"].astype(str) == "delisting"]
    dead = {str(t) + " US" for t in dead["ticker"]} & set(meta.index)
    assert all(meta.loc[t, "inactive_date"] not in (None, "None", "nan") for t in dead)
    # the member the terminal no longer resolves: named, not silently missing
    gone = members[2] + " US Equity"
    assert f"{gone}: the terminal returned no" in proc.stderr
    # the reused ticker: its dead company's months have no prices (the ticker's now begin after
    # that death): 02 names it, with the listing date the terminal gives today
    died = sim["corporate_actions"]
    died = died[(died["action"].astype(str) == "delisting") & died["ticker"].isin(members[5:])]
    reused = str(died.sort_values("date")["ticker"].iloc[0]) + " US"
    early = report["sources"][0]["members_before_prices"]
    assert [e["ticker"] for e in early["examples"]] == [reused] and early["count"] == 1
    assert early["examples"][0]["listing_date"] > early["examples"][0]["listed_from"]
    assert reused in (next((root / "datasets").glob("v*/quality_report.md")).read_text())
    # the company with a February fiscal year: its fiscal quarter ends (asked FISCAL), each a
    # month before the calendar quarter end the terminal would otherwise give
    ends = set(fund.loc[fund["ticker"] == members[4] + " US", "period_end"])
    calendar = set(want.loc[want["ticker"] == members[4], "period_end"])
    assert len(ends) >= 4 and ends <= {d - pd.offsets.MonthEnd(1) for d in calendar}
    assert not any(d.month in (3, 6, 9, 12) for d in ends)
    assert "as restated" not in json.dumps(report)  # (this terminal gives OR)


def test_the_stand_in_refuses_and_adjusts_as_a_terminal_does(tmp_path):
    """The stand-in itself: an unknown override (the old END_DT) is a fieldException on every
    field, and daily prices come adjusted for capital changes unless every adjustment flag is
    sent false."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_terminal", TERMINAL / "blpapi" / "_terminal.py")
    stand_in = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stand_in)  # (by path: never shadows a real blpapi package)
    RecordedTerminal = stand_in.RecordedTerminal  # noqa: N806
    record = make_recording

    recording = tmp_path / "quirks.json"
    recording.write_text(json.dumps(record(SETTINGS, quirks=True)))
    terminal = RecordedTerminal(str(recording))
    ask = {"operation": "ReferenceDataRequest", "securities": [INDEX],
           "fields": ["INDX_MWEIGHT_HIST"], "overrides": {"END_DT": "20110131"}}  # fmt: skip
    ((_, body),) = terminal.answer(ask)
    data = body["securityData"][0]
    assert not data["fieldData"] and "END_DT" in data["fieldExceptions"][0]["errorInfo"]["message"]
    ask["overrides"] = {"END_DATE_OVERRIDE": "20110131"}
    ((_, body),) = terminal.answer(ask)
    assert body["securityData"][0]["fieldData"]["INDX_MWEIGHT_HIST"]

    recorded = json.loads(recording.read_text())
    split = next(
        (sec, r["Ex-Date"]) for sec, rec in recorded["reference"].items()
        for r in rec.get("DVD_HIST_ALL", []) if r["Dividend Type"] in ("Stock Split", "Stock Dividend")
    )  # fmt: skip
    sec, ex = split
    daily = {"operation": "HistoricalDataRequest", "securities": [sec], "fields": ["PX_LAST"],
             "overrides": {}, "periodicitySelection": "DAILY"}  # fmt: skip
    flags = ("adjustmentNormal", "adjustmentAbnormal", "adjustmentSplit", "adjustmentFollowDPDF")

    def closes(**elements):
        ((_, body),) = terminal.answer({**daily, **elements})
        return {str(r["date"]): r["PX_LAST"] for r in body["securityData"]["fieldData"]}

    raw, adjusted = closes(**dict.fromkeys(flags, False)), closes(adjustmentSplit=False)
    before = [d for d in raw if d < ex]
    assert before and all(adjusted[d] < raw[d] for d in before)
    changes = recorded["reference"][sec]["DVD_HIST_ALL"]
    last = max(r["Ex-Date"] for r in changes if r["Dividend Type"] != "Regular Cash")
    assert all(adjusted[d] == raw[d] for d in raw if d >= last)

    # fiscal periods: dated at their own ends only when periodicityAdjustment = FISCAL is sent
    fiscal_sec = next(s for s, rec in recorded["historical"].items() if "CALENDAR_DATES" in rec)
    quarterly = {"operation": "HistoricalDataRequest", "securities": [fiscal_sec],
                 "fields": ["ANNOUNCEMENT_DT"], "overrides": {"FILING_STATUS": "OR"},
                 "periodicitySelection": "QUARTERLY"}  # fmt: skip

    def period_ends(**elements):
        ((_, body),) = terminal.answer({**quarterly, **elements})
        return [r["date"] for r in body["securityData"]["fieldData"]]

    own, calendar = period_ends(periodicityAdjustment="FISCAL"), period_ends()
    assert {d.month for d in own} == {2, 5, 8, 11} and {d.month for d in calendar} == {3, 6, 9, 12}
    assert len(own) == len(calendar) >= 4


def test_a_terminal_that_refuses_first_reported_values_marks_them_restated(tmp_path):
    """A terminal that refuses FILING_STATUS = OR (no first-reported values): 01 says so once,
    logs the latest values (the restated quarter among them) and marks the source's
    fundamentals restated in the metadata before any of them; 02 carries the mark into the
    manifest and the quality report, so runs say "as restated" and restated_lag_days applies."""
    from equity_backtest.data.vocabulary import BLOOMBERG_RESTATED

    path = tmp_path / "refusing.json"
    path.write_text(json.dumps(make_recording(SETTINGS, quirks=True, refuses_original=True)))
    root = new_project(tmp_path / "r")
    proc = query(root, path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("gives no fundamentals with FILING_STATUS = OR") == 1
    asked = [r for r in requests(root) if r.get("periodicitySelection") == "QUARTERLY"]
    with_or = [r["overrides"].get("FILING_STATUS") == "OR" for r in asked]
    first_chunk = {s for r, o in zip(asked, with_or, strict=True) if o for s in r["securities"]}
    assert with_or[0] and len(first_chunk) == BBG["bbg_chunk_tickers"]  # (OR asked of one chunk)
    assert with_or == sorted(with_or, reverse=True)  # (then never again)
    logs = [(n, p) for n, p in datalog.list_logs(root / "datalog")]
    marked = [n for n, _ in logs if n.data_type == "metadata_array"][-1]
    first_figures = min(n.timestamp for n, _ in logs if n.data_type == "ticker_fundamental_data")
    assert marked.timestamp < first_figures
    datasets.build(root / "datalog", root / "datasets")
    manifest = json.loads(next((root / "datasets").glob("v*/manifest.json")).read_text())
    assert manifest["fundamentals_vintage"] == {"bloomberg": BLOOMBERG_RESTATED}
    _, bbg = datasets.load_tables(root / "datasets")
    sim = _sim_tables(tmp_path)
    first = sorted(set(sim["constituents"]["ticker"].astype(str)))[0]
    fund, want = bbg["fundamentals"], sim["fundamentals"]
    mine = fund[(fund["ticker"].astype(str) == first + " US") & (fund["metric"] == "revenue")]
    theirs = want[(want["ticker"].astype(str) == first) & (want["metric"] == "revenue")]
    ratio = (
        mine.sort_values("period_end")["value"].to_numpy()
        / theirs.sort_values("period_end")["value"].to_numpy()
    )
    assert sorted(set(ratio.round(9))) == [1.0, 1.1]  # the restated quarter, as the terminal has it


def test_a_month_without_members_after_the_first_list_is_an_error_naming_it(recording, tmp_path):
    """An empty members answer (a rejected or ignored override) is never skipped in silence once
    the index has given a list: 01 stops with exit 3 naming the index and the day."""
    recorded = json.loads(recording.read_text())
    del recorded["reference"][INDEX]["INDX_MWEIGHT_HIST|END_DATE_OVERRIDE=20110630"]
    path = tmp_path / "gap.json"
    path.write_text(json.dumps(recorded))
    proc = query(new_project(tmp_path / "g"), path)
    assert proc.returncode == 3
    assert f"no INDX_MWEIGHT_HIST members of {INDEX} for 2011-06-30" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dividends_in_another_currency_are_converted_at_their_ex_date_rate(tmp_path):
    """A member quoted in euros, prices asked in dollars (bbg_currency = "USD"): its DVD_HIST_ALL
    amounts, in euros, are converted at the EURUSD rate of each ex-date, so the cash the
    engine pays is the simulated market's dollars; without bbg_currency they stay in euros."""
    path = tmp_path / "quirks.json"
    path.write_text(json.dumps(make_recording(SETTINGS, quirks=True)))
    sim = _sim_tables(tmp_path)
    members = sorted(set(sim["constituents"]["ticker"].astype(str)))
    want = sim["corporate_actions"]
    want = want[
        (want["ticker"].astype(str) == members[3]) & (want["action"].astype(str) == "dividend")
    ]
    assert len(want) > 2
    paid = {}
    for currency in ("USD", None):
        root = new_project(tmp_path / f"fx_{currency}", bbg_currency=currency)
        proc = query(root, path)
        assert proc.returncode == 0, proc.stderr
        datasets.build(root / "datalog", root / "datasets")
        ca = datasets.load_tables(root / "datasets")[1]["corporate_actions"]
        mine = ca[
            (ca["ticker"].astype(str) == members[3] + " US")
            & (ca["action"].astype(str) == "dividend")
        ]
        paid[currency] = mine.set_index("date")["value"]
    expected = want.set_index("date")["value"]
    pd.testing.assert_series_equal(
        paid["USD"], expected, check_names=False, check_index_type=False, rtol=1e-9
    )
    assert (paid[None] < expected.to_numpy()).all()  # euros: about 1.1 to the dollar


def test_dvd_hist_all_types_become_the_right_actions():
    """A split's amount is its ratio (0.1 for a 1-for-10 reverse split), a stock dividend's
    fraction is 1 + it, cash types are dividends, and a spin-off or rights issue is logged
    unapplied under its kind; a spin-off is valued where its price adjustment factor says."""
    from equity_backtest.data.vendors.bloomberg_actions import actions, value_spinoffs

    raw = pd.DataFrame({
        "ex_date": ["2020-01-02", "2020-02-03", "2020-03-02", "2020-04-01", "2020-05-01", "2020-06-01"],
        "dividend_amount": [0.1, 0.05, 0.5, 1.25, 0.3, 0.2],
        "dividend_type": ["Stock Split", "Stock Dividend", "Regular Cash", "Special Cash", "Spinoff",
                          "Rights Issue"],
    })  # fmt: skip
    got = actions(raw, dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    assert list(got["action"]) == ["split", "split", "dividend", "dividend", "unvalued", "rights"]
    assert list(got["value"]) == [0.1, 1.05, 0.5, 1.25, 0.3, 0.2]
    # the spin-off's value from EQY_DVD_ADJUST_FACT: multiplied (0.9), divided (1/0.9), taken
    # off (1.5); with a 2-for-1 split the same day, the split's own factor comes out first;
    # none on its day, or an absurd one, leaves it unvalued
    closes = pd.Series([20.0], index=pd.to_datetime(["2020-04-30"]))
    for factor, operator, value in ((0.9, 2, 2.0), (1 / 0.9, 1, 2.0), (1.5, 4, 1.5)):
        factors = pd.DataFrame({"adjustment_date": ["2020-05-01"], "adjustment_factor": [factor],
                                "adjustment_factor_operator_type": [operator]})  # fmt: skip
        valued = value_spinoffs(got, factors, closes)
        assert valued.loc[4, "action"] == "dividend"
        assert valued.loc[4, "value"] == pytest.approx(value, rel=1e-12)
    with_split = pd.concat([got, pd.DataFrame({"date": [pd.Timestamp("2020-05-01")],
                                                "action": ["split"], "value": [2.0],
                                                "kind": ["Stock Split"]})], ignore_index=True)  # fmt: skip
    factors = pd.DataFrame({"adjustment_date": ["2020-05-01", "2020-05-01"],
                            "adjustment_factor": [2.0, 0.9],
                            "adjustment_factor_operator_type": [1, 2]})  # fmt: skip
    assert value_spinoffs(with_split, factors, closes).loc[4, "value"] == pytest.approx(2.0)
    for odd in (factors.assign(adjustment_date="2020-05-04"),
                factors.assign(adjustment_factor=[2.0, -3.0]),
                factors.rename(columns={"adjustment_factor": "factor"})):  # fmt: skip
        assert value_spinoffs(with_split, odd, closes).loc[4, "action"] == "unvalued"


def test_latest_prices_for_an_intraday_heartbeat_are_last_price(recording, tmp_path):
    """A live account's intraday heartbeat on Bloomberg asks LAST_PRICE (bdp) of the ordered
    members, through the real xbbg and the stand-in terminal."""
    import subprocess

    members = sorted(
        {m["Index Member"] for k, v in json.loads(recording.read_text())["reference"][INDEX].items()
         for m in v}
    )[:3]  # fmt: skip
    code = (
        "import json, sys, pandas as pd;"
        "from equity_backtest.config import Parameters;"
        "from equity_backtest.data import vendors;"
        "p = Parameters().replace(source='bloomberg', bbg_retry_wait_s=0.0);"
        f"print(json.dumps(vendors.latest_prices(p, {members!r}, pd.Timestamp.now(tz='UTC')).to_dict()))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TERMINAL), str(REPO)]),
           "BLPAPI_RECORDING": str(recording)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    sim = simulated.simulate(SETTINGS).prices
    for member in members:
        last = sim[sim["ticker"] == member.removesuffix(" US")]["close"].iloc[-1]
        assert got[member] == pytest.approx(last, rel=1e-9)
