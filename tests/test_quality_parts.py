"""#31: the quality report's cross-table results kept per market part (quality.parts/): a new
day remakes the results of the part it touches only, and the report stays the one a build from
scratch writes, byte for byte, whatever was kept, changed or damaged. The kept summaries read
back as they were made; a shared file's damage is still refused."""

import shutil

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import datasets, market_checks, quality_parts
from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log


@pytest.fixture
def store(tmp_path, small_store):
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    return tmp_path


def _next_day(store, tickers: int = 3) -> pd.Timestamp:
    """Log one more day (the last row a day later) for the first few tickers."""
    logs = list_logs(store / "datalog")
    markets = [(n, p) for n, p in logs if n.data_type == "ticker_market_data"]
    ts = max(n.timestamp for n, _ in logs)
    day = max(read_log(p)["date"].max() for _, p in markets) + pd.Timedelta(days=1)
    for k, (name, path) in enumerate(markets[:tickers]):
        row = read_log(path).iloc[-1:].assign(date=day)
        write_log(store / "datalog", LogName(ts + 1 + k, name.source, name.data_type, name.label), row)  # fmt: skip
    return day


def _made(monkeypatch) -> dict[str, int]:
    """Count the parts whose coverage rows and market-cap ratios are made (not taken)."""
    made = {"coverage": 0, "ratios": 0}
    for kind in made:
        keep = getattr(quality_parts.Memo, f"keep_{kind}")

        def counted(self, *a, kind=kind, keep=keep):
            made[kind] += 1
            return keep(self, *a)

        monkeypatch.setattr(quality_parts.Memo, f"keep_{kind}", counted)
    return made


def _same_report_as_from_scratch(store, version: str) -> None:
    boot = datasets.build(store / "datalog", store / f"boot-{version}", full=True)
    for name in ("quality_report.json", "quality_report.md"):
        ours = (store / "datasets" / version / name).read_text().replace(version, "vX")
        theirs = (store / f"boot-{version}" / boot.version / name).read_text()
        assert ours == theirs.replace(boot.version, "vX"), name


def _parts(store, version: str) -> list:
    return sorted((store / "datasets" / version / "market").glob("*.feather"))


def test_a_new_day_remakes_the_results_of_its_part_only(store, monkeypatch):
    first = datasets.build(store / "datalog", store / "datasets")
    day = _next_day(store)
    made, read = _made(monkeypatch), []
    read_frame = market_checks.read_frame
    monkeypatch.setattr(market_checks, "read_frame", lambda p: read.append(p) or read_frame(p))
    second = datasets.build(store / "datalog", store / "datasets")
    parts = _parts(store, second.version)
    assert len(parts) > 3
    assert made["coverage"] == 1  # the new day's part; the others' rows are the kept ones
    assert 1 <= made["ratios"] <= 2  # (and the part before where the day opens a new year)
    old, new = (store / "datasets" / v / quality_parts.FOLDER for v in (first.version, second.version))  # fmt: skip
    ratios = sorted((new / "ratios").glob("*.feather"))
    shared = [f for f in ratios if (old / "ratios" / f.name).is_file()]
    assert len(shared) >= len(ratios) - 2 and all(f.samefile(old / "ratios" / f.name) for f in shared)  # fmt: skip
    big = [p for p in read if p.name in ("pairs.feather", "month_ends.feather")]
    assert read and {p.parent.parent.name for p in big} <= {f"{day.year - 1}.checks"}, big
    monkeypatch.undo()
    _same_report_as_from_scratch(store, second.version)


def test_new_lists_remake_every_part_s_coverage_and_keep_its_ratios(store, monkeypatch):
    """Coverage reads the constituent lists, the ratios do not: a newer list changes the key
    of every part's coverage rows only."""
    datasets.build(store / "datalog", store / "datasets")
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "constituent_list"
    )
    write_log(
        store / "datalog",
        LogName(name.timestamp + 10**12, name.source, name.data_type, name.label),
        read_log(path).iloc[:2],
    )
    made = _made(monkeypatch)
    second = datasets.build(store / "datalog", store / "datasets")
    assert made["coverage"] == len(_parts(store, second.version)) and made["ratios"] == 0
    monkeypatch.undo()
    _same_report_as_from_scratch(store, second.version)


@pytest.mark.parametrize(
    "damage",
    [
        "coverage rows cut short",
        "coverage rows of text",
        "a part's ratios garbled",
        "a part's ratios of other columns",
        "a part's pairs garbled",
    ],
)
def test_kept_results_that_cannot_be_read_are_made_again(store, monkeypatch, damage):
    first = datasets.build(store / "datalog", store / "datasets")
    kept = store / "datasets" / first.version
    if damage == "coverage rows cut short":
        path = kept / quality_parts.FOLDER / "coverage.feather"
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "coverage rows of text":  # (the columns it expects, values it cannot count)
        path = kept / quality_parts.FOLDER / "coverage.feather"
        table = pd.read_feather(path)
        table.astype({c: str for c in table.columns}).assign(index_members="many").to_feather(path)
    elif damage == "a part's ratios garbled":
        path = sorted((kept / quality_parts.FOLDER / "ratios").glob("*.feather"))[0]
        path.write_bytes(b"not an arrow file")
    elif damage == "a part's ratios of other columns":
        path = sorted((kept / quality_parts.FOLDER / "ratios").glob("*.feather"))[-1]
        pd.DataFrame({"ticker": ["X"], "value": [1.0]}).to_feather(path)
    else:  # the earliest year's kept pairs: read only where the coverage rows are made again
        (kept / quality_parts.FOLDER / "coverage.feather").unlink()
        path = sorted((kept / "market").glob("*.checks"))[0]
        for pairs in path.rglob("pairs.feather"):
            pairs.write_bytes(b"not an arrow file")
    _next_day(store)
    made = _made(monkeypatch)
    second = datasets.build(store / "datalog", store / "datasets")
    assert made["coverage"] + made["ratios"] > 2
    monkeypatch.undo()
    _same_report_as_from_scratch(store, second.version)


def test_kept_summaries_read_back_as_pandas_reads_them(tmp_path):
    """market_checks.load (each frame taken from Arrow column by column) gives what pandas'
    read_feather gives with text as object, as the summaries were read before: values, dtypes,
    None and NaN where missing; and the values summarise() made."""
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2020-01-01", periods=80)
    n = 6 * len(days)
    frame = pd.DataFrame(
        {
            "source": "s",
            "ticker": np.repeat([f"T{i}" for i in range(6)], len(days)),
            "date": np.tile(days, 6),
            "open": rng.uniform(5, 50, n),
            "high": np.nan,
            "low": np.nan,
            "close": rng.uniform(5, 50, n) * np.repeat([1, 1, 1, 1, 1, 1e6], len(days)),
            "volume": rng.choice([0.0, 0.0, 1e5], n),
            "market_cap": np.where(rng.uniform(size=n) < 0.3, np.nan, 1e9),
            "log_ts": np.int64(1),
        }
    )
    frame.loc[5, "close"] = -1.0
    made = market_checks.summarise(frame)
    market_checks.save({"s": made}, tmp_path / "checks")
    for later in [(), ("pairs", "month_ends")]:
        read = market_checks.load(tmp_path / "checks", later)["s"]
        assert set(read) == set(made)
        for key, want in made.items():
            pandas = pd.read_feather(tmp_path / "checks" / "s" / f"{key}.feather")
            text = [c for c in pandas if not pd.api.types.is_numeric_dtype(pandas[c]) and not pd.api.types.is_datetime64_any_dtype(pandas[c]) and not pd.api.types.is_bool_dtype(pandas[c])]  # fmt: skip
            pandas = pandas.astype(dict.fromkeys(text, object))
            got = read[key]
            pd.testing.assert_frame_equal(got, pandas, check_index_type=True)
            for c in text:
                assert [type(v) for v in got[c]] == [type(v) for v in pandas[c]], (key, c)
            pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False)


def test_a_day_that_opens_a_year_takes_the_later_period_ends_into_its_part(store):
    """A period end after the last trading day is compared on that day, the last part's; once
    a day of the next year comes, on that day, in the new part. The part before keeps its file
    but not its ratios (their key names the next part's first day), so no period end counts
    twice or not at all."""
    logs = list_logs(store / "datalog")
    markets = [(n, p) for n, p in logs if n.data_type == "ticker_market_data"]
    last = max(read_log(p)["date"].max() for _, p in markets)
    name, path = next((n, p) for n, p in markets if read_log(p)["date"].max() == last)
    fname, fpath = next(
        (n, p)
        for n, p in logs
        if n.data_type == "ticker_fundamental_data" and n.label == name.label
    )
    ts = max(n.timestamp for n, _ in logs)
    new_day = pd.Timestamp(last.year + 1, 1, 4)
    later = (
        read_log(fpath)
        .iloc[-1:]
        .assign(
            period_end=new_day + pd.Timedelta(days=1),
            announcement_date=new_day + pd.Timedelta(days=40),
        )
    )
    ts = max(ts, (new_day + pd.Timedelta(days=41)).value // 1000)  # (queried after that)
    write_log(store / "datalog", LogName(ts + 1, fname.source, fname.data_type, fname.label), later)
    first = datasets.build(store / "datalog", store / "datasets")
    units = first.quality["sources"][0]["market_cap_units"]
    write_log(
        store / "datalog",
        LogName(ts + 2, name.source, name.data_type, name.label),
        read_log(path).iloc[-1:].assign(date=new_day),
    )
    second = datasets.build(store / "datalog", store / "datasets")
    assert second.quality["sources"][0]["market_cap_units"]["checked"] == units["checked"]
    _same_report_as_from_scratch(store, second.version)
