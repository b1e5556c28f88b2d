"""D3 WRDS vendor: its SQL through SQLAlchemy and psycopg2 against a local PostgreSQL server holding the simulated
market in CRSP's (CIZ and legacy) and Compustat's shapes (tests/crsp_record.py).

The dataset built from it equals the simulated source's (PERMNOs mapped back to tickers) for the
daily files in both formats, the monthly files give the month-end bars, and the backtest on it is
the simulated one; CRSP's quirks (negative prices, delisting returns, YTD cash flows, missing rdq,
restatements, special dividends) land where they should. A killed 01 resumes to the same datalog;
a stopped server is exit 3 with what was logged kept; bad credentials are one message."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import datalog, datasets
from equity_backtest.data.vendors import simulated
from tests import crsp_record
from tests import postgres as pg
from tests.conftest import REPO, run_script, write_parameters_file

pytestmark = pytest.mark.slow
pytest.importorskip("sqlalchemy")
SETTINGS = crsp_record.SETTINGS
MARKET = simulated.simulate(SETTINGS)
TICKER = {str(p): t for t, p in crsp_record.permnos(MARKET).items()}


@pytest.fixture(scope="module")
def server():
    with pg.cluster() as cluster:
        extras = crsp_record.fill(cluster.url, "wrds_quirks", quirks=True)
        crsp_record.fill(cluster.url, "wrds_exact", quirks=False)
        cluster.extras = extras
        yield cluster


def project(root: Path, server, database: str = "wrds_quirks", **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    settings = dict(
        source="wrds",
        index=crsp_record.INDEX,
        wrds_host="127.0.0.1",
        wrds_port=server.port,
        wrds_dbname=database,
        wrds_sslmode="disable",
        query_start=SETTINGS.start,
        query_end=SETTINGS.end,
        start=dt.date(2010, 6, 1),
        end=SETTINGS.end,
        bbg_retries=1,
        bbg_retry_wait_s=0.0,
        wrds_chunk_permnos=7,
        wrds_chunk_years=1,
    )
    write_parameters_file(root / "parameters.py", **{**settings, **kw})
    for script in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        shutil.copy(REPO / script, root / script)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    return root


def query(root: Path, user: str = "research", **env):
    return run_script(root, "01_query_vendor.py", check=False, env={"WRDS_USERNAME": user, **env})


def built(root: Path) -> dict[str, pd.DataFrame]:
    run_script(root, "02_build_datasets.py")
    _, tables = datasets.load_tables(root / "datasets")
    out = {}
    for name, frame in tables.items():
        frame = frame.drop(columns=["source", "log_ts"])
        frame = frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"})
        if "ticker" in frame:
            frame["ticker"] = frame["ticker"].astype(str).map(lambda t: TICKER.get(t, t))
        out[name] = frame
    return out


@pytest.fixture(scope="module")
def simulated_tables(tmp_path_factory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("sim")
    simulated.query(SETTINGS, root / "datalog")
    datasets.build(root / "datalog", root / "datasets")
    _, tables = datasets.load_tables(root / "datasets")
    out = {}
    for name, frame in tables.items():
        frame = frame.drop(columns=["source", "log_ts"])
        out[name] = frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"})
    return out


def _members(cons: pd.DataFrame, days: pd.DatetimeIndex) -> list[frozenset]:
    """Each day's members: the latest list on or before it (as the panel reads them)."""
    lists = {d: frozenset(g["ticker"]) for d, g in cons.groupby("date")}
    dates = pd.DatetimeIndex(sorted(lists))
    at = dates.searchsorted(days, side="right") - 1
    return [lists[dates[k]] if k >= 0 else frozenset() for k in at]


def _same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    got = got.sort_values(keys).reset_index(drop=True)
    want = want[list(got.columns)].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("wrds_format", ["ciz", "legacy"])
def test_daily_files_give_the_simulated_dataset(server, simulated_tables, tmp_path, wrds_format):
    root = project(tmp_path, server, wrds_format=wrds_format)
    proc = query(root)
    assert proc.returncode == 0, proc.stderr
    got, sim = built(root), simulated_tables
    extras = server.extras
    days = pd.DatetimeIndex(sorted(sim["market"]["date"].unique()))
    universe = set(got["metadata"]["ticker"])
    assert universe == set(sim["constituents"]["ticker"])

    # membership on every trading day, from spells logged on month ends and change days
    assert _members(got["constituents"], days) == _members(sim["constituents"], days)
    assert got["constituents"]["weight"].isna().all()

    # prices: raw, bid/ask averages made positive and flagged, market cap from CRSP's units
    market = got["market"]
    flagged = market[market["close_is_bid_ask"] == 1][["ticker", "date"]]
    want_flagged = extras["bid_ask_rows"][extras["bid_ask_rows"]["ticker"].isin(universe)]
    _same(flagged, want_flagged, ["ticker", "date"])
    want = sim["market"][sim["market"]["ticker"].isin(universe)].copy()
    if wrds_format == "legacy":  # CRSP's -99 (missing volume) is logged as no volume
        ticker, day = extras["missing_volume"]
        hit = (want["ticker"] == ticker) & (want["date"] == day)
        assert hit.sum() == 1
        want.loc[hit, "volume"] = np.nan
        assert "missing-volume code" in proc.stderr
    _same(market.drop(columns="close_is_bid_ask"), want, ["ticker", "date"])

    # metadata: PERMNO is the identifier, names and GICS sectors as simulated, ticker history kept
    meta = got["metadata"].set_index("ticker")
    sim_meta = sim["metadata"].set_index("ticker").loc[meta.index]
    assert (meta["name"] == sim_meta["name"]).all() and (meta["sector"] == sim_meta["sector"]).all()
    assert (meta["symbol"] == meta.index).all()
    new, old = extras["renamed"]
    assert meta.loc[new, "symbol_history"] == f"1990-01-01 {old}; 2006-01-01 {new}"
    assert meta.loc[new, "name_history"] == f"1990-01-01 {meta.loc[new, 'name']}"
    assert meta.loc[new, "exchange_history"] == f"1990-01-01 {meta.loc[new, 'exchange']}"
    # the GICS history (comp.co_hgic): a member that changed sector keeps both, with dates
    moved, old, now = extras["sector_change"]
    assert meta.loc[moved, "sector_history"] == f"1999-01-01 {old}; 2011-07-01 {now}"
    # CIZ's one-day record after a delisting is not the exchange it was listed on
    gone = extras["delisting_record"]
    assert (
        meta.loc[gone, "exchange"] in ("N", "1") and "X" not in meta.loc[gone, "exchange_history"]
    )

    # corporate actions: splits and dividends as simulated, plus the special dividend, the
    # return of capital and the capital gain (each summed with that day's regular dividend);
    # the merger's distribution and the legacy file's rights and share-issue notice are logged
    # unapplied and counted; a delisting is dated the day after the last trade, which the
    # engine applies on the next trading day
    ca = got["corporate_actions"]
    want = sim["corporate_actions"][sim["corporate_actions"]["ticker"].isin(universe)].copy()
    for ticker, day, amount in extras["extra_cash"]:
        hit = (want["ticker"] == ticker) & (want["date"] == day) & (want["action"] == "dividend")
        assert hit.sum() == 1
        want.loc[hit, "value"] += amount
    paid = ["ticker", "date", "action"]
    applied = ca["action"].isin(["split", "dividend"])
    _same(ca[applied], want[want["action"] != "delisting"], paid)
    unapplied = ca[~applied & (ca["action"] != "delisting")]["action"].value_counts().to_dict()
    expected = {
        "reorganisation": 1,
        **(extras["legacy_unapplied"] if wrds_format == "legacy" else {}),
    }
    assert unapplied == expected
    report = json.loads(next((root / "datasets").glob("v*/quality_report.json")).read_text())
    counted = report["sources"][0]["unapplied_distributions"]
    assert {k: v["count"] for k, v in counted.items()} == expected
    assert "distributions logged but not applied" in proc.stderr
    got_dl = ca[ca["action"] == "delisting"].sort_values("ticker").reset_index(drop=True)
    want_dl = want[want["action"] == "delisting"].sort_values("ticker").reset_index(drop=True)
    assert len(got_dl) == len(want_dl) > 0
    # a member still trading at the data's end (legacy dsedelist's code-100 row) never delists
    active = {TICKER[str(p)] for p in extras["active_permnos"]} & universe
    assert active and not active & set(got_dl["ticker"])
    np.testing.assert_allclose(got_dl["value"], want_dl["value"], rtol=1e-12)
    assert (days.searchsorted(got_dl["date"]) == days.searchsorted(want_dl["date"])).all()
    assert ((got_dl["date"] - pd.Timedelta(days=1)).isin(days)).all()  # last trading day + 1

    # fundamentals: Compustat's millions and YTD cash flows back to the simulated figures; the
    # restated quarter is a later version; a quarter without rdq has no announcement date
    fund = got["fundamentals"]
    ticker, period, later = extras["restated"]
    restated = (fund["ticker"] == ticker) & (fund["period_end"] == period)
    restated &= fund["announcement_date"] == later
    # revenue x 1.1, and gross profit (saleq - cogsq) by as much; nothing else changed
    assert list(fund.loc[restated, "metric"]) == ["gross_profit", "revenue"]
    want = sim["fundamentals"][sim["fundamentals"]["ticker"].isin(universe)].copy()
    first = want[(want["ticker"] == ticker) & (want["period_end"] == period)]
    first = first.set_index("metric")["value"]
    later = fund[restated].set_index("metric")["value"]
    assert later["revenue"] == pytest.approx(first["revenue"] * 1.1, rel=1e-12)
    assert later["gross_profit"] == pytest.approx(
        first["gross_profit"] + first["revenue"] * 0.1, rel=1e-9
    )
    ticker, period = extras["no_rdq"]
    blank = (want["ticker"] == ticker) & (want["period_end"] == period)
    want.loc[blank, "announcement_date"] = pd.NaT
    # a year-to-date item's quarter is its YTD less the quarter before: a company's first
    # report after Q1 has no quarter before it, so that quarter's own figure is unknown
    quarters = set(zip(want["ticker"], want["period_end"].dt.to_period("Q"), strict=True))
    first = [
        (q.quarter != 1) and (t, q - 1) not in quarters
        for t, q in zip(want["ticker"], want["period_end"].dt.to_period("Q"), strict=True)
    ]
    want = want[~(np.array(first) & want["metric"].isin(["operating_cash_flow", "capex"]))]
    keys = ["ticker", "metric", "period_end", "announcement_date"]
    got_f = fund[~restated].sort_values(keys).reset_index(drop=True)
    want_f = want[list(got_f.columns)].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got_f, want_f, check_dtype=False, rtol=1e-9, atol=1e-3)


def _month_end_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily market rows -> month-end bars as CRSP's CIZ monthly file has them (the month's last
    close and market cap, the month's volume, no open/high/low)."""
    month = frame["date"].dt.to_period("M")
    last = frame.groupby(month)["date"].transform("max") == frame["date"]
    volume = frame.groupby(month)["volume"].sum().to_numpy()
    return frame[last].assign(open=np.nan, high=np.nan, low=np.nan, volume=volume)


def _simulated_project(root: Path, frequency: str) -> Path:
    """The simulated source's datalog (daily, or reduced to month-end bars) and the same run."""
    root.mkdir()
    write_parameters_file(
        root / "parameters.py",
        source="simulated", index=SETTINGS.index_name, sim_n_tickers=SETTINGS.n_tickers,
        sim_index_size=SETTINGS.index_size, sim_start=SETTINGS.start, sim_end=SETTINGS.end,
        seed=SETTINGS.seed, start=dt.date(2010, 6, 1), end=SETTINGS.end,
    )  # fmt: skip
    for script in ("02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        shutil.copy(REPO / script, root / script)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    simulated.query(SETTINGS, root / "daily_log")
    for name, path in datalog.list_logs(root / "daily_log"):
        frame = datalog.read_log(path, name)
        if name.data_type == "ticker_market_data" and frequency == "monthly":
            frame = _month_end_bars(frame)
        datalog.write_log(root / "datalog", name, frame)
    return root


@pytest.mark.parametrize("frequency", ["daily", "monthly"])
def test_the_backtest_on_wrds_data_is_the_simulated_one(server, tmp_path, frequency):
    """01 -> 04 on CRSP's CIZ files (no value-changing quirks) and on the simulated source (its
    month-end bars for the monthly file) give the same values, cash and dividends to 1e-9."""
    root = project(tmp_path / "wrds", server, database="wrds_exact", wrds_frequency=frequency)
    assert query(root).returncode == 0
    sim = _simulated_project(tmp_path / "sim", frequency)
    navs = []
    for folder in (root, sim):
        for script in ("02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
            run_script(folder, script)
        runs = [p for p in (folder / "results").iterdir() if p.is_dir() and p.name[0] != "."]
        log = pd.read_csv(sorted(runs)[-1] / "runtime_log.csv", parse_dates=["date"])
        navs.append(log.set_index("date")[["value", "cash", "dividends"]])
    wrds_nav, sim_nav = navs
    assert len(wrds_nav) > (500 if frequency == "daily" else 25)
    assert wrds_nav.index.equals(sim_nav.index)
    np.testing.assert_allclose(wrds_nav.to_numpy(), sim_nav.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("wrds_format", ["ciz", "legacy"])
def test_monthly_files_give_month_end_bars_and_a_monthly_backtest(
    server, simulated_tables, tmp_path, wrds_format
):
    root = project(tmp_path, server, wrds_format=wrds_format, wrds_frequency="monthly")
    assert query(root).returncode == 0
    got = built(root)["market"]
    sim = simulated_tables["market"]
    sim = sim[sim["ticker"].isin(set(got["ticker"]))]
    want = pd.concat([_month_end_bars(g) for _, g in sim.groupby("ticker")], ignore_index=True)
    if wrds_format == "legacy":  # the legacy file's askhi/bidlo: here the last day's high/low
        days = sim.set_index(["ticker", "date"])
        at = pd.MultiIndex.from_frame(want[["ticker", "date"]])
        want = want.assign(high=days.loc[at, "high"].to_numpy(), low=days.loc[at, "low"].to_numpy())
    _same(got.drop(columns="close_is_bid_ask"), want, ["ticker", "date"])
    run_script(root, "03_trade.py")
    out = run_script(root, "04_evaluate.py")
    assert "tearsheet.html" in out.stdout


def _content(root: Path) -> dict[tuple[str, str], bytes]:
    out = {}
    for name, path in datalog.list_logs(root / "datalog"):
        assert (name.data_type, name.label) not in out, f"{name} logged twice"
        out[(name.data_type, name.label)] = path.read_bytes()
    return out


def test_killed_mid_query_resumes_to_the_uninterrupted_datalog(server, tmp_path):
    whole = project(tmp_path / "whole", server)
    assert query(whole).returncode == 0
    killed = project(tmp_path / "killed", server)
    proc = query(killed, EQUITY_BACKTEST_KILL_AT="write:40")
    assert proc.returncode == -signal.SIGKILL
    partial = _content(killed)
    assert 0 < len(partial) < len(_content(whole))
    proc = query(killed)
    assert proc.returncode == 0, proc.stderr
    assert _content(killed) == _content(whole)
    rerun = query(killed)
    assert rerun.returncode == 0 and "0 logfiles written" in rerun.stderr


def test_a_stopped_server_is_exit_3_and_keeps_what_was_logged(server, tmp_path):
    root = project(tmp_path, server)
    proc = query(root, EQUITY_BACKTEST_KILL_AT="write:30")
    assert proc.returncode == -signal.SIGKILL
    before = _content(root)
    assert before
    server.stop()
    try:
        proc = query(root)
    finally:
        server.start()
    assert proc.returncode == 3, proc.stderr
    assert "cannot be reached" in proc.stderr and "Traceback" not in proc.stderr
    assert _content(root) == before


def test_bad_credentials_and_a_missing_user_are_one_message(server, tmp_path):
    root = project(tmp_path, server)
    proc = query(root, user="nobody", PGPASSWORD="s3cret-value")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "refused the credentials" in proc.stderr and "s3cret-value" not in proc.stderr
    assert "nobody" in proc.stderr
    proc = query(root, user="")
    assert proc.returncode == 2 and "WRDS_USERNAME" in proc.stderr
    assert not (root / "datalog").exists() or not list((root / "datalog").iterdir())


def test_a_missing_table_names_the_format_to_check(server, tmp_path):
    root = project(tmp_path, server)
    # a subscription without CRSP's CIZ tables: the first query fails with what to check
    proc = query(root, user="research", PGOPTIONS="-c search_path=nothing")
    assert proc.returncode == 0, "schema-qualified names do not depend on search_path"
    root2 = project(tmp_path / "b", server, database="postgres")
    proc = query(root2)
    assert (
        proc.returncode == 2 and "wrds_format" in proc.stderr and "Traceback" not in proc.stderr
    ), proc.stderr[-3000:]


def test_restated_fundamentals_are_said_to_be_restated(server, tmp_path):
    """Compustat's standard fundq holds restated values only: the dataset's manifest, its quality
    report and a run's tear sheet say so (D9+), while a simulated dataset's manifest is as
    before (no such key)."""
    root = project(tmp_path, server)
    assert query(root).returncode == 0
    run_script(root, "02_build_datasets.py")
    version = datasets.current_version(root / "datasets")
    manifest = datasets.read_manifest(root / "datasets", version)
    assert manifest["fundamentals_vintage"]["wrds"].startswith("as restated")
    report = (root / "datasets" / version / "quality_report.md").read_text()
    assert "- fundamentals: as restated" in report
    shutil.copy(REPO / "strategies" / "quality.py", root / "quality.py")
    run_script(root, "03_trade.py", "--algorithm", "quality.py")
    out = run_script(root, "04_evaluate.py")
    metrics = json.loads((root / Path(out.stdout.strip()).parent / "metrics.json").read_text())
    assert metrics["settings"]["fundamentals"].startswith("as restated")
    assert any("upper bound" in f for f in metrics["findings"])

    # restated_lag_days: each restated-only figure public that many days later, said in the
    # tear sheet; a simulated dataset's figures (not restated) are not moved
    from equity_backtest.config import load_parameters
    from equity_backtest.data.panel import load_panel

    params = load_parameters(root / "parameters.py").replace(
        datasets_dir=str(root / "datasets"), panel_cache=False
    )
    days = load_panel(params).dates
    base = load_panel(params).fundamentals["revenue"]
    lagged = load_panel(params.replace(restated_lag_days=30)).fundamentals["revenue"]
    shown = days[np.minimum(base.public_day, len(days) - 1)]
    later = days[np.minimum(lagged.public_day, len(days) - 1)]
    inside = lagged.public_day < len(days)
    gap = np.asarray((later - shown)[inside].days)
    # 30 calendar days, each date then at its next trading day's close (so 27 to 34 apart)
    assert (lagged.public_day >= base.public_day).all() and gap.min() >= 27 and gap.max() <= 34
    assert 29 <= gap.mean() <= 31
    run_script(root, "03_trade.py", "--algorithm", "quality.py", "--set", "restated_lag_days=30")
    out = run_script(root, "04_evaluate.py")
    metrics = json.loads((root / Path(out.stdout.strip()).parent / "metrics.json").read_text())
    assert "30 days after its first report" in metrics["settings"]["fundamentals"]
    assert any("seen here some days after" in f for f in metrics["findings"])


def test_legacy_files_asked_for_days_after_their_last_update_say_so(server, tmp_path):
    """CRSP retired the legacy (SIZ) files after 2024: asking them for later days is said once,
    with the format to use instead (the days that exist are still logged)."""
    root = project(tmp_path, server, wrds_format="legacy", query_end=dt.date(2025, 6, 30))
    proc = query(root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("legacy (SIZ) files end on 2024-12-31") == 1
    assert 'wrds_format = "ciz"' in proc.stderr


def test_without_a_ccm_grant_01_goes_on_with_one_warning(server, tmp_path):
    """An account without CRSP/Compustat Merged: no fundamentals and SIC sectors, one warning,
    and prices, members and corporate actions logged as usual (it used to fail the whole of 01
    at the metadata step)."""
    import sqlalchemy as sa

    crsp_record.fill(server.url, "wrds_noccm", quirks=False)
    engine = sa.create_engine(server.url.rsplit("/", 1)[0] + "/wrds_noccm")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE crsp.ccmxpf_lnkhist")
    engine.dispose()
    root = project(tmp_path, server, database="wrds_noccm")
    proc = query(root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("cannot read crsp.ccmxpf_lnkhist") == 1
    kinds = {datalog.parse_name(p.name).data_type for p in (root / "datalog").iterdir()}
    assert "ticker_fundamental_data" not in kinds
    assert {"ticker_market_data", "corporate_actions", "constituent_list"} <= kinds
    run_script(root, "02_build_datasets.py")
    from equity_backtest.data.vendors.wrds_metadata import SIC_DIVISIONS

    meta = datasets.load_tables(root / "datasets")[1]["metadata"]
    sectors = set(meta["sector"].dropna().astype(str))
    assert sectors and sectors <= {name for _, name in SIC_DIVISIONS}


def test_the_schema_file_types_every_table_the_vendor_asks():
    """tests/wrds_schema.toml creates every table (crsp_record.fill); each table the vendor's SQL
    names is in it, each of its tables is asked, and the legacy CRSP and Compustat numerics are
    DOUBLE PRECISION as WRDS stores them (an integer distcd once hid a lost split)."""
    import re

    from equity_backtest.data.vendors import wrds_sql

    sql = " ".join([*(q for fmt in wrds_sql.QUERIES.values() for q in fmt.values()),
                    wrds_sql.FUNDAMENTALS, wrds_sql.FUNDAMENTALS_PIT, wrds_sql.GICS,
                    wrds_sql.GICS_HISTORY])  # fmt: skip
    asked = set(re.findall(r"\b((?:crsp|comp|comp_snapshot)\.\w+)", sql))
    types = crsp_record.schema_types()
    assert asked == set(types)
    for table in ("crsp.dsf", "crsp.msf", "crsp.dsedist", "crsp.dsedelist", "crsp.stocknames",
                  "crsp.dsp500list", "comp.fundq", "comp_snapshot.wrds_csq_pit"):  # fmt: skip
        numeric = {c: t for c, t in types[table].items() if t not in ("DATE",)}
        assert all(t == "DOUBLE PRECISION" or t.startswith("VARCHAR") for t in numeric.values())
    assert types["crsp.dsedist"]["distcd"] == "DOUBLE PRECISION"


HOLD_TWO = """import pandas as pd

def compute_weights(view, params):
    return pd.Series(0.5, index=[{first!r}, {second!r}])
"""


def test_a_legacy_split_and_special_dividend_give_the_nav_of_crsp_s_own_arithmetic(
    server, tmp_path
):
    """Through 01 -> 04 on the legacy (SIZ) files, half in a stock with a 2:1 split (distcd
    5523, facpr 1, a DOUBLE on WRDS) and half in one with a special dividend (1272, summed with
    that day's regular one) and a return of capital (2232): each day's NAV equals the value
    computed here straight from the tables with CRSP's own arithmetic (shares x (1 + facpr) on
    the ex-date, divamt x shares in cash, a delisting's dlret or dlprc), to 1e-9."""
    frames, _ = crsp_record.tables()
    dist, dsf = frames["crsp", "dsedist"], frames["crsp", "dsf"]
    delist = frames["crsp", "dsedelist"]
    start, end = pd.Timestamp("2011-07-05"), pd.Timestamp(SETTINGS.end)
    ticker, day, _ = server.extras["special_dividend"]
    payer = crsp_record.permnos(MARKET)[ticker]
    spells = frames["crsp", "dsp500list"]
    members = set(spells.loc[(spells["start"] <= start) & (spells["ending"] >= start), "permno"])
    splits = dist[(dist["distcd"] == 5523) & (dist["facpr"] == 1.0) & (dist["exdt"] > start)]
    splits = splits[splits["permno"].isin(members)]
    splitter = int(splits["permno"].iloc[0])
    held = [splitter, payer]
    root = project(tmp_path, server, wrds_format="legacy", start=start.date(), end=end.date(),
                   rebalance="never", fractional_shares=True, cash_buffer=0.0,
                   no_trade_band=0.0, spread_bps=0.0, slippage_bps=0.0, impact_coef=0.0,
                   commission_rate=0.0, commission_min=0.0, volume_cap=1.0,
                   algorithm="hold_two.py", benchmark="index")  # fmt: skip
    (root / "hold_two.py").write_text(HOLD_TWO.format(first=str(splitter), second=str(payer)))
    assert query(root).returncode == 0
    for script in ("02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        run_script(root, script)
    run = sorted(p for p in (root / "results").iterdir() if p.is_dir() and p.name[0] != ".")[-1]
    nav = pd.read_csv(run / "runtime_log.csv", parse_dates=["date"]).set_index("date")["value"]

    # CRSP's arithmetic, day by day, from the raw tables
    px = {p: dsf[dsf["permno"] == p].set_index("date").sort_index() for p in held}
    days = nav.index
    cash, shares = 1_000_000.0, {p: 0.0 for p in held}
    decided = days[0]
    target = {p: 0.5 * cash / abs(px[p].loc[decided, "prc"]) for p in held}
    gone = {}
    for p in held:
        row = delist[(delist["permno"] == p) & (delist["dlstcd"] != 100)]
        if len(row):
            last = pd.Timestamp(row["dlstdt"].iloc[0])
            close = abs(px[p].loc[:last, "prc"].iloc[-1])
            r = row.iloc[0]
            gone[p] = (last, close * (1 + r["dlret"]) if pd.notna(r["dlret"]) else abs(r["dlprc"]))
    expected = []
    for k, d in enumerate(days):
        for p in held:
            if shares[p]:
                today = dist[
                    (dist["permno"] == p) & (dist["exdt"] > days[k - 1]) & (dist["exdt"] <= d)
                ]
                for r in today.itertuples():
                    if int(r.distcd // 1000) in (6, 7) or r.facpr <= -1:
                        continue
                    cash += shares[p] * max(r.divamt, 0.0)
                    shares[p] *= 1 + r.facpr
                if p in gone and gone[p][0] < d:
                    cash += shares[p] * gone[p][1]
                    shares[p] = 0.0
        if k == 1:  # the first decision fills at this day's open
            for p in held:
                shares[p] = target[p]
                cash -= target[p] * px[p].loc[d, "openprc"]
        value = cash + sum(shares[p] * abs(px[p].loc[d, "prc"]) for p in held if shares[p])
        expected.append(value)
    assert len(days) > 300 and (dist["exdt"].between(start, end) & dist["permno"].isin(held)).any()
    np.testing.assert_allclose(nav.to_numpy(), np.array(expected), rtol=1e-9)


def test_point_in_time_fundamentals_date_a_restatement_at_its_restatement(server, tmp_path):
    """wrds_fundamentals = "snapshot" reads Compustat Snapshot's versions: the restated quarter's
    first figures are public from its report date and the restated ones only from the day the
    snapshot first held them; the dataset is not marked restated (restated_lag_days does not
    apply); and a backtest up to the day before the restatement is the same with or without
    the restated version in the datalog."""
    from equity_backtest.config import load_parameters
    from equity_backtest.data.panel import load_panel
    from equity_backtest.data.vocabulary import POINT_IN_TIME

    root = project(tmp_path / "pit", server, wrds_fundamentals="snapshot")
    proc = query(root)
    assert proc.returncode == 0, proc.stderr
    run_script(root, "02_build_datasets.py")
    version = datasets.current_version(root / "datasets")
    manifest = datasets.read_manifest(root / "datasets", version)
    assert manifest["fundamentals_vintage"]["wrds"] == POINT_IN_TIME

    ticker, period, restated_on = server.extras["restated"]
    permno = str(crsp_record.permnos(MARKET)[ticker])
    params = load_parameters(root / "parameters.py").replace(
        datasets_dir=str(root / "datasets"), panel_cache=False
    )
    panel = load_panel(params)
    k = list(panel.tickers).index(permno)
    series = panel.fundamentals["revenue"]
    mine = (series.ticker == k) & (series.period_end == np.datetime64(period))
    public = panel.dates[np.minimum(series.public_day[mine], len(panel.dates) - 1)]
    values = series.value[mine]
    assert len(values) == 2 and values[1] == pytest.approx(values[0] * 1.1, rel=1e-12)
    assert public[0] < pd.Timestamp(restated_on) <= public[1]
    lagged = load_panel(params.replace(restated_lag_days=30)).fundamentals["revenue"]
    assert (lagged.public_day == series.public_day).all()  # not restated: no lag

    # the view's sector is the one in effect on its date (Compustat's GICS history)
    from equity_backtest.engine.view import View

    moved, old, now = server.extras["sector_change"]
    code = str(crsp_record.permnos(MARKET)[moved])
    held = (panel.tickers == code).astype(float)  # held, so in the view whatever the index
    for day, sector in (("2011-06-15", old), ("2011-07-15", now)):
        view = View(panel, int(panel.dates.searchsorted(pd.Timestamp(day))), held, 1e6, 60)
        meta = view.metadata
        row = meta.loc[code] if code in meta.index else meta[meta["ticker"] == code].iloc[0]
        assert row["sector"] == sector, (day, row.to_dict())

    # the same run without the restated version, up to the day before it: the same NAV
    twin = project(tmp_path / "twin", server, wrds_fundamentals="snapshot")
    shutil.copytree(root / "datalog", twin / "datalog")
    for name, path in datalog.list_logs(twin / "datalog"):
        if name.data_type == "ticker_fundamental_data" and name.label == permno:
            frame = datalog.read_log(path, name)
            keep = frame["announcement_date"] != pd.Timestamp(restated_on)
            assert (~keep).sum() == 1
            path.unlink()
            datalog.write_log(twin / "datalog", name, frame[keep.to_numpy()])
    navs = []
    for folder in (root, twin):
        if folder is twin:
            run_script(folder, "02_build_datasets.py")
        shutil.copy(REPO / "strategies" / "quality.py", folder / "quality.py")
        run_script(folder, "03_trade.py", "--algorithm", "quality.py", "--set",
                   "rebalance=weekly")  # fmt: skip
        runs = sorted(p for p in (folder / "results").iterdir() if p.is_dir() and p.name[0] != ".")
        log = pd.read_csv(runs[-1] / "runtime_log.csv", parse_dates=["date"]).set_index("date")
        navs.append(log["value"])
    before = navs[0].index < pd.Timestamp(restated_on)
    assert before.sum() > 50 and not before.all()
    np.testing.assert_array_equal(navs[0][before].to_numpy(), navs[1][before].to_numpy())
