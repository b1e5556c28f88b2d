"""D7: the data-quality report finds what is planted in the data."""

import json
import shutil

import numpy as np
import pandas as pd

from equity_backtest.data import datasets, market_checks
from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log


def test_report_finds_planted_problems(tmp_path, small_store):
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    logs = list_logs(tmp_path / "datalog")
    name, path = next((n, p) for n, p in logs if n.data_type == "ticker_market_data")
    frame = read_log(path, name).iloc[:200].copy()
    frame.loc[frame.index[5], "close"] = -1.0  # a non-positive price
    frame.loc[frame.index[20:35], "volume"] = 0.0  # 15 days without volume
    frame.loc[frame.index[100] :, ["open", "high", "low", "close"]] *= (
        0.5  # an unadjusted 2:1 split
    )
    later = name.timestamp + 10**9
    write_log(tmp_path / "datalog", LogName(later, name.source, name.data_type, name.label), frame)
    # a ticker with three missing days (a newer query never deletes rows, so a new ticker)
    gappy = read_log(path, name).iloc[:200].drop(range(150, 153))
    write_log(tmp_path / "datalog", LogName(later + 2, name.source, name.data_type, "GAPPY"), gappy)
    cname, cpath = next((n, p) for n, p in logs if n.data_type == "constituent_list")
    cons = read_log(cpath, cname)
    cons.loc[len(cons)] = [cons["date"].iloc[0], cons["index"].iloc[0], "GHOST", np.nan]
    write_log(
        tmp_path / "datalog", LogName(later + 1, cname.source, cname.data_type, cname.label), cons
    )

    result = datasets.build(tmp_path / "datalog", tmp_path / "datasets")
    rep = json.loads((tmp_path / "datasets" / result.version / "quality_report.json").read_text())
    s = rep["sources"][0]
    ticker = name.label
    assert (
        s["non_positive_prices"]["count"] == 1
        and s["non_positive_prices"]["examples"][0]["ticker"] == ticker
    )
    assert (
        s["zero_volume_runs"]["count"] == 1 and s["zero_volume_runs"]["examples"][0]["days"] == "15"
    )
    jumps = s["unexplained_split_like_jumps"]["examples"]
    assert any(j["ticker"] == ticker and abs(float(j["ratio"]) - 0.5) < 0.05 for j in jumps)
    assert any(g["ticker"] == "GAPPY" and g["missing_days"] == "3" for g in s["gaps"]["examples"])
    assert (
        s["members_without_market_data"] == ["GHOST"]
        and "GHOST" in s["members_without_fundamentals"]
    )
    assert s["coverage_by_month"] and "members_with_fundamentals" in s["coverage_by_month"][-1]
    text = (tmp_path / "datasets" / result.version / "quality_report.md").read_text()
    assert "Non-positive prices: 1" in text and "GHOST" in text


def test_dates_are_checked_against_the_exchange_calendar(tmp_path, small_store):
    """A whole missing session and a row on a holiday are found (XNYS: the metadata's exchange).
    The datalog is the small market's, written again without 2012-06-01 and with one ticker
    trading on 4 July 2012."""
    planted = None
    for name, path in list_logs(small_store / "datalog"):
        if name.data_type != "ticker_market_data":
            (tmp_path / "datalog").mkdir(exist_ok=True)
            shutil.copy(path, tmp_path / "datalog" / path.name)
            continue
        frame = read_log(path, name)
        frame = frame[frame["date"] != pd.Timestamp("2012-06-01")]
        if planted is None and frame["date"].max() > pd.Timestamp("2012-07-05"):
            planted = name.label
            extra = frame[frame["date"] == pd.Timestamp("2012-07-03")].assign(
                date=pd.Timestamp("2012-07-04")
            )
            frame = pd.concat([frame, extra]).sort_values("date", kind="stable")
        write_log(tmp_path / "datalog", name, frame.reset_index(drop=True))
    result = datasets.build(tmp_path / "datalog", tmp_path / "datasets")
    rep = json.loads((tmp_path / "datasets" / result.version / "quality_report.json").read_text())
    check = rep["sources"][0]["calendar"]
    assert check["exchange"] == "XNYS" and check["checked"]
    assert check["missing_sessions"] == {"count": 1, "examples": ["2012-06-01"]}
    assert check["days_not_sessions"] == {"count": 1, "examples": ["2012-07-04"]}
    md = (tmp_path / "datasets" / result.version / "quality_report.md").read_text()
    assert "2012-06-01" in md and "2012-07-04" in md


def test_clean_simulated_data_has_no_findings(small_store):
    version = datasets.current_version(small_store / "datasets")
    s = json.loads((small_store / "datasets" / version / "quality_report.json").read_text())[
        "sources"
    ][0]
    assert s["non_positive_prices"]["count"] == 0 and s["zero_volume_runs"]["count"] == 0
    assert s["unexplained_split_like_jumps"]["count"] == 0 and s["gaps"]["missing_days"] == 0
    assert s["calendar"]["checked"] and s["calendar"]["exchange"] == "XNYS"
    assert s["calendar"]["missing_sessions"]["count"] == 0
    assert s["calendar"]["days_not_sessions"]["count"] == 0
    assert "members_before_prices" not in s


def test_members_listed_before_their_security_traded_are_named(small_store):
    """A member whose prices start more than a month after its first list, or whose listing
    date comes after it (a reused ticker now naming a later company), is named with its dates;
    a first price within a month of the first list is not."""
    from equity_backtest.data.consistency import members_before_prices

    _, tables = datasets.load_tables(small_store / "datasets")
    cons, meta = tables["constituents"], tables["metadata"]
    listed = cons.groupby(cons["ticker"].astype(str))["date"].min()
    a, b, c = listed.index[:3]
    first = listed.copy()
    first[a] = listed[a] + pd.Timedelta(days=200)  # prices only from much later
    first[b] = listed[b] + pd.Timedelta(days=20)  # a late start of data: not flagged
    meta = meta.assign(listing_date=meta["ticker"].astype(str).map(
        {c: f"{listed[c] + pd.Timedelta(days=400):%Y-%m-%d}"}).fillna("None"))  # fmt: skip
    found = members_before_prices(cons, first, meta)["members_before_prices"]
    assert found["count"] == 2 and {e["ticker"] for e in found["examples"]} == {a, c}
    by = {e["ticker"]: e for e in found["examples"]}
    assert by[a]["first_price"] == f"{first[a]:%Y-%m-%d}" and by[a]["listing_date"] is None
    assert by[c]["listing_date"] > by[c]["listed_from"]
    assert members_before_prices(cons, listed, tables["metadata"]) == {}


def test_a_source_with_an_index_list_and_no_prices_is_reported(tmp_path):
    """A constituent list imported under a source of its own (its prices come from another)
    builds, and the report says that source has no market data (it was a traceback)."""
    cons = pd.DataFrame(
        {"date": pd.to_datetime(["2020-01-02"] * 2), "index": "SPX", "ticker": ["A", "B"],
         "weight": [0.5, 0.5]}
    )  # fmt: skip
    name = LogName(1_700_000_000_000_000, "lists", "constituent_list", "20200102_SPX")
    write_log(tmp_path / "datalog", name, cons)
    r = datasets.build(tmp_path / "datalog", tmp_path / "datasets")
    (report,) = r.quality["sources"]
    assert report["source"] == "lists" and report["tickers_with_market_data"] == 0
    assert report["members_without_market_data"] == ["A", "B"]
    assert report["coverage_by_month"] == [
        {"month": "2020-01", "tickers_with_market_data": 0, "index_members": 2,
         "members_with_market_data": 0, "members_with_fundamentals": 0}
    ]  # fmt: skip


def test_market_checks_block_by_block_equal_one_pass(tmp_path, small_store, monkeypatch):
    """The market checks run on blocks of whole tickers (market_checks._BLOCK_ROWS rows or so), so
    memory stays flat at CRSP size; the report is the same whatever the block size, down to
    one ticker a block, with more flagged rows than the examples listed and problems on the
    first and last rows of tickers (where blocks meet)."""
    from equity_backtest.data import quality

    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    logs = [
        (n, p) for n, p in list_logs(tmp_path / "datalog") if n.data_type == "ticker_market_data"
    ]
    later = max(n.timestamp for n, _ in logs) + 1
    for k, (name, path) in enumerate(logs[:30]):
        frame = read_log(path, name)
        frame.loc[frame.index[0], "low"] = 0.0  # the first row: non-positive
        frame.loc[frame.index[-12:], "volume"] = 0.0  # a zero-volume run to the last row
        frame.loc[frame.index[-1], "close"] *= 3 if k % 2 else 1e10  # a jump, or absurd
        write_log(
            tmp_path / "datalog", LogName(later + k, name.source, name.data_type, name.label), frame
        )
    version = datasets.build(tmp_path / "datalog", tmp_path / "datasets").version
    _, tables = datasets.load_tables(tmp_path / "datasets", version)
    manifest = datasets.read_manifest(tmp_path / "datasets", version)
    whole = quality.report(tables, manifest)
    s = whole["sources"][0]
    assert (
        s["non_positive_prices"]["count"] == 30 and len(s["non_positive_prices"]["examples"]) == 20
    )
    assert s["zero_volume_runs"]["count"] >= 30 and s["implausible_prices"]["count"] >= 15
    assert s["unexplained_split_like_jumps"]["count"] >= 10
    for rows in (1, 7, 1000):
        monkeypatch.setattr(market_checks, "_BLOCK_ROWS", rows)
        assert quality.report(tables, manifest) == whole, rows


def test_crsp_exchange_codes_name_their_calendars():
    """CIZ's primaryexch letters and the legacy numeric exchcd (a DOUBLE on WRDS, so '1.0' as
    text) map to exchange_calendars codes instead of falling back silently."""
    from equity_backtest.data import calendars

    assert [calendars.code(c) for c in ("N", "A", "Q", "R", "B")] == [
        "XNYS", "XASE", "XNAS", "ARCX", "BATS"
    ]  # fmt: skip
    assert [calendars.code(c) for c in ("1", "2.0", "3", "4", "33")] == [
        "XNYS", "XASE", "XNAS", "ARCX", "XNAS"
    ]  # fmt: skip
    assert calendars.code("X") is None  # CRSP's 'unknown': the default calendar is used


def test_market_caps_in_other_units_than_price_x_shares_are_flagged(small_store):
    """The simulated market's caps are close x shares (ratio 1); the same caps in millions, as a
    vendor might give them unscaled, are flagged with the ratio that says so."""
    from equity_backtest.data.consistency import market_cap_units
    from equity_backtest.data.fundamentals_checks import shares_outstanding

    _, tables = datasets.load_tables(small_store / "datasets")
    mk, fund = tables["market"], shares_outstanding(tables["fundamentals"])
    same = market_cap_units(mk, fund)
    assert same["checked"] > 100 and same["consistent"] and abs(same["median_ratio"] - 1) < 0.05
    millions = market_cap_units(mk.assign(market_cap=mk["market_cap"] / 1e6), fund)
    assert not millions["consistent"] and millions["median_ratio"] < 1e-5
    assert millions["tickers_off"] > 0 and millions["examples"]
    from equity_backtest.data.quality import summary_lines

    report = {"logs": 1, "skipped_logs": [], "sources": []}
    assert summary_lines(report) == ["quality: 1 logs, 0 skipped"]
    nothing = market_cap_units(mk.assign(market_cap=np.nan), fund)
    assert nothing["checked"] == 0 and "no market caps" in nothing["why"]


def _market_over_three_years() -> pd.DataFrame:
    """Twelve tickers over 2019-2021 business days with problems planted where the years meet:
    a spike on a year's last day that reverts, split-like moves on a year's first day (one
    explained by a split), zero-volume runs across one, two and no year ends, a ticker absent
    for a year whose run goes on across the gap, and a single row in a year that spikes."""
    days = pd.bdate_range("2019-01-01", "2021-12-31")
    y1 = days[days.year == 2019]
    y2 = days[days.year == 2020]
    frames = []
    for k in range(12):
        ticker = f"T{k:02d}"
        on = days
        if ticker == "T07":
            on = days[days.year != 2020]
        if ticker == "T09":
            on = days[(days.year != 2020) | (days == y2[100])]
        close = np.full(len(on), 10.0 + k)
        frame = pd.DataFrame(
            {"source": "s", "ticker": ticker, "date": on, "open": close, "high": close * 1.01,
             "low": close * 0.99, "close": close, "volume": 1000.0, "market_cap": close * 1e6}
        )  # fmt: skip
        at = {d: i for i, d in enumerate(on)}
        if ticker == "T01":
            frame.loc[at[y1[-1]], "close"] = 500.0  # spike on 2019's last day, back on 2020's first
        if ticker in ("T02", "T03"):
            frame.loc[at[y2[0]] :, ["open", "high", "low", "close"]] *= (
                0.5  # halved on 2020's first
            )
        if ticker == "T04":
            frame.loc[at[y1[-6]] : at[y2[4]], "volume"] = 0.0  # 6 + 5 days across a year end
        if ticker == "T05":
            frame.loc[at[y1[-4]] : at[y2[3]], "volume"] = 0.0  # 4 + 4: too short
        if ticker == "T06":  # 3 days, the whole of 2020, 3 days: one run over three parts
            frame.loc[at[y1[-3]] : at[days[days.year == 2021][2]], "volume"] = 0.0
        if ticker == "T07":  # 5 days before the gap, 6 after: consecutive rows, one run
            first_2021 = days[days.year == 2021][0]
            frame.loc[at[y1[-5]] : at[first_2021] + 5, "volume"] = 0.0
        if ticker == "T08":
            frame.loc[:30, "low"] = 0.0  # more non-positive rows than examples, in 2019
            frame.loc[at[y2[0]], "low"] = -1.0
        if ticker == "T09":
            frame.loc[at[y2[100]], "close"] = 900.0  # its one 2020 row spikes against 2019 and 2021
        if ticker == "T10":
            frame.loc[at[y2[-1]], "close"] = 2e9  # absurd on a year's last day
        frames.append(frame)
    market = pd.concat(frames, ignore_index=True)
    market["source"] = pd.Categorical(market["source"])
    market["ticker"] = pd.Categorical(
        market["ticker"], categories=sorted(market["ticker"].unique())
    )
    return market.assign(log_ts=np.int64(1))


def test_market_checks_by_year_part_equal_one_pass_over_the_table(tmp_path, monkeypatch):
    """A dataset's year parts are summarised alone (and the summaries kept as JSON beside them):
    combined, they give the report one pass over the whole table gives, the checks across year
    ends included: spikes, split-like moves (explained or not), zero-volume runs over one, two or
    no year ends, a ticker absent for a year, more flagged rows than examples."""
    from equity_backtest.data import quality
    from equity_backtest.data.datasets import versions, year_parts

    market = _market_over_three_years()
    tables = {t: versions._empty(t) for t in datasets.TABLES}
    tables["market"] = market
    tables["corporate_actions"] = pd.DataFrame(
        {"source": ["s"], "ticker": ["T03"], "date": [pd.Timestamp("2020-01-01")],
         "action": ["split"], "value": [2.0], "log_ts": [np.int64(1)]}
    )  # fmt: skip
    # shares at quarter ends, and at a period end that is no month end (read from its part)
    ends = [*pd.date_range("2019-03-31", "2021-12-31", freq="QE"), pd.Timestamp("2020-06-17")]
    tables["fundamentals"] = pd.DataFrame(
        {"source": "s", "ticker": "T00", "period_end": ends, "announcement_date": ends,
         "metric": "shares_outstanding", "value": 1e6, "log_ts": np.int64(1)}
    ).assign(value=lambda f: np.where(f["period_end"] == ends[-1], 1e3, 1e6))  # fmt: skip
    manifest = {"version": "v1", "logs": [], "skipped_logs": []}
    whole = quality.report(tables, manifest, "XNYS")
    parts = []
    (tmp_path / "market").mkdir()
    for year, part in year_parts.split("market", market):
        path = tmp_path / "market" / f"{year}.feather"
        part.to_feather(path)
        parts.append(year_parts.checked_part(path, part, None)["s"])
        assert path.with_suffix(".checks").is_dir()
    read, rows_on = [], datasets.Columns.rows_on
    monkeypatch.setattr(datasets.Columns, "rows_on", lambda c, d, k: read.append(d) or rows_on(c, d, k))  # fmt: skip
    by_part = quality.report({**tables, "market": datasets.Columns(tmp_path, "market")}, manifest, "XNYS", {"s": parts})  # fmt: skip
    assert by_part == whole
    assert [list(d) for d in read] == [[np.datetime64("2020-06-17", "ns")]]  # the odd day only
    folders = sorted((tmp_path / "market").glob("*.checks"))
    reloaded = [market_checks.load(p)["s"] for p in folders]
    assert quality.report(tables, manifest, "XNYS", {"s": reloaded}) == whole
    s = whole["sources"][0]
    units = s["market_cap_units"]  # the odd day's shares are off by 1000: one ticker's median
    assert units["checked"] == len(ends) and units["consistent"], units
    flagged = {c: {e["ticker"] for e in s[c]["examples"]} for c in market_checks.FLAGGING}
    assert flagged["implausible_prices"] == {"T01", "T09", "T10"}
    assert (
        flagged["unexplained_split_like_jumps"] >= {"T02"}
        and "T03" not in flagged["unexplained_split_like_jumps"]
    )
    runs = {e["ticker"]: e["days"] for e in s["zero_volume_runs"]["examples"]}
    assert runs == {"T04": "11", "T06": str(3 + 262 + 3), "T07": "11"}
    assert (
        s["non_positive_prices"]["count"] == 32 and len(s["non_positive_prices"]["examples"]) == 20
    )
