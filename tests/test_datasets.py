"""D5: versioned builds, latest query wins, incremental == bootstrap, crash safety, bad logs."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import datasets
from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log
from equity_backtest.data.datasets import builder as ds_builder
from equity_backtest.data.datasets import fold as ds_fold
from equity_backtest.data.datasets import resolve as ds_resolve
from equity_backtest.data.datasets import year_parts as ds_year_parts
from equity_backtest.errors import BadInputError
from tests.conftest import tree_digest


@pytest.fixture
def store(tmp_path, small_store):
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    return tmp_path


def _tables_digest(root, version):
    return _tables_digest_of(root / "datasets", version)


def test_build_writes_version_manifest_and_switches_current(store):
    r = datasets.build(store / "datalog", store / "datasets")
    assert (
        r.version == "v000001" and (store / "datasets" / "CURRENT").read_text().strip() == "v000001"
    )
    m = datasets.read_manifest(store / "datasets", "v000001")
    assert len(m["logs"]) == len(list_logs(store / "datalog")) and m["previous_version"] is None
    assert set(m["tables"]) == set(datasets.TABLES)
    again = datasets.build(store / "datalog", store / "datasets")
    assert again.up_to_date and again.version == "v000001"


def test_incremental_build_equals_bootstrap_rebuild(store):
    logs = list_logs(store / "datalog")
    half = store / "half"
    half.mkdir()
    for _, path in logs[: len(logs) // 2]:
        shutil.copy(path, half / path.name)
    datasets.build(half, store / "datasets")
    for _, path in logs[len(logs) // 2 :]:
        shutil.copy(path, half / path.name)
    r2 = datasets.build(half, store / "datasets")
    assert r2.version == "v000002" and r2.new_logs == len(logs) - len(logs) // 2
    boot = datasets.build(store / "datalog", store / "boot")
    assert _tables_digest(store, "v000002") == _tables_digest_of(store / "boot", boot.version)


def test_logs_read_in_batches_give_the_tables_of_logs_read_one_by_one(store, monkeypatch):
    """02 reads many logs of a type at once (datalog.parse_many); reading each alone (a batch
    of one byte's budget) gives the same tables, byte for byte, and the same manifest."""
    batched = datasets.build(store / "datalog", store / "batched")
    monkeypatch.setattr(ds_builder, "_BATCH_BYTES", 1)
    alone = datasets.build(store / "datalog", store / "alone")
    for name in ("tables", "logs"):
        assert (
            datasets.read_manifest(store / "batched", batched.version)[name]
            == datasets.read_manifest(store / "alone", alone.version)[name]
        )


def test_the_reader_gives_logs_in_the_order_they_are_listed(store, monkeypatch):
    """02 parses a batch on a thread while it reads the next logs: what comes out is still in
    the order the logs went in (a batch of one byte's budget: each log is its own batch)."""
    logs = list_logs(store / "datalog")
    monkeypatch.setattr(ds_builder, "_BATCH_BYTES", 1)
    out = [
        path.name
        for table, rows, digests, bad in ds_builder._read_logs(logs, False, False)
        for path, _ in digests
    ]
    assert len(logs) > 50 and out == [path.name for _, path in logs]


def test_latest_query_wins_and_exact_ticker_match(store):
    datasets.build(store / "datalog", store / "datasets")
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "ticker_market_data"
    )
    frame = read_log(path).iloc[:3].copy()
    frame["close"] = [1.0, 2.0, 3.0]
    newer = LogName(name.timestamp + 10**12, name.source, name.data_type, name.label)
    write_log(store / "datalog", newer, frame)
    # a ticker whose name contains the first one must not be touched (exact matching)
    other = LogName(name.timestamp + 10**12 + 1, name.source, name.data_type, name.label + "X")
    write_log(store / "datalog", other, frame.assign(close=[7.0, 7.0, 7.0]))
    datasets.build(store / "datalog", store / "datasets")
    _, t = datasets.load_tables(store / "datasets")
    mk = t["market"].set_index(["ticker", "date"])
    assert mk.loc[name.label, "close"].iloc[:3].tolist() == [1.0, 2.0, 3.0]
    assert mk.loc[name.label, "open"].iloc[0] == frame["open"].iloc[0]  # other fields kept
    assert mk.loc[name.label + "X", "close"].tolist() == [7.0, 7.0, 7.0]
    # an older log written later in wall-clock terms still loses to the newer timestamp
    older = LogName(name.timestamp - 1, name.source, name.data_type, name.label)
    write_log(store / "datalog", older, frame.assign(close=[9.0, 9.0, 9.0]))
    datasets.build(store / "datalog", store / "datasets")
    _, t = datasets.load_tables(store / "datasets")
    assert t["market"].set_index(["ticker", "date"]).loc[name.label, "close"].iloc[:3].tolist() == [
        1.0,
        2.0,
        3.0,
    ]


def test_incremental_builds_that_fold_in_requeries_equal_the_bootstrap(store, monkeypatch):
    """An incremental build folds new rows into the previous tables (datasets._fold_in) and
    resolves only the keys they name; after each kind of new log the tables equal a build from
    scratch, byte for byte: a newer partial re-query, an older one, a new ticker, a new source,
    a new dividend, and a log with a column the table lacks (resolved in full)."""
    import numpy as np

    datasets.build(store / "datalog", store / "datasets")
    folded, fold_in = [], ds_fold._fold_in
    for module in (ds_builder, ds_year_parts):  # (market folds a year part at a time)
        monkeypatch.setattr(
            module, "_fold_in", lambda t, *a: folded.append((t, fold_in(t, *a))) or folded[-1][1]
        )
    logs = list_logs(store / "datalog")
    name, path = next((n, p) for n, p in logs if n.data_type == "ticker_market_data")
    ca_name = next(n for n, _ in logs if n.data_type == "corporate_actions")
    frame = read_log(path).iloc[:5].copy()
    ts = max(n.timestamp for n, _ in logs)
    new_logs = [
        (LogName(ts + 1, name.source, name.data_type, name.label),
         frame.assign(close=frame["close"] * 1.01, open=np.nan)),
        (LogName(name.timestamp - 1, name.source, name.data_type, name.label),
         frame.assign(close=1.0)),
        (LogName(ts + 2, name.source, name.data_type, "NEWCO"), frame),
        (LogName(ts + 3, "othervendor", name.data_type, name.label), frame.assign(volume=1.0)),
        (LogName(ts + 4, ca_name.source, "corporate_actions", ca_name.label),
         pd.DataFrame({"date": frame["date"].iloc[:1], "action": "dividend", "value": 0.01})),
        (LogName(ts + 5, name.source, name.data_type, "EXTRA"), frame.assign(pe=12.5)),
    ]  # fmt: skip
    for k, (log_name, rows) in enumerate(new_logs):
        write_log(store / "datalog", log_name, rows)
        r = datasets.build(store / "datalog", store / "datasets")
        boot = datasets.build(store / "datalog", store / f"boot{k}", full=True)
        assert _tables_digest(store, r.version) == _tables_digest_of(
            store / f"boot{k}", boot.version
        ), log_name
    shortcut = [t for t, result in folded if result is not None]
    assert shortcut.count("market") == 4 and "corporate_actions" in shortcut  # not the "pe" log


def test_a_newer_constituent_list_replaces_the_whole_list(store):
    datasets.build(store / "datalog", store / "datasets")
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "constituent_list"
    )
    frame = read_log(path).iloc[:2]
    write_log(
        store / "datalog",
        LogName(name.timestamp + 10**12, name.source, name.data_type, name.label),
        frame,
    )
    datasets.build(store / "datalog", store / "datasets")
    _, t = datasets.load_tables(store / "datasets")
    c = t["constituents"]
    assert sorted(c[c["date"] == frame["date"].iloc[0]]["ticker"]) == sorted(frame["ticker"])


def test_crashed_build_leaves_previous_version_in_use(store, monkeypatch):
    datasets.build(store / "datalog", store / "datasets")
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "ticker_market_data"
    )
    write_log(
        store / "datalog",
        LogName(name.timestamp + 10**12, name.source, name.data_type, name.label),
        read_log(path).iloc[:1],
    )

    def boom(*a, **k):
        raise OSError("disk full (simulated crash while writing the manifest)")

    monkeypatch.setattr(ds_builder, "atomic_write_text", boom)
    with pytest.raises(OSError):
        datasets.build(store / "datalog", store / "datasets")
    monkeypatch.undo()
    assert datasets.current_version(store / "datasets") == "v000001"
    version, tables = datasets.load_tables(store / "datasets")
    assert version == "v000001" and len(tables["market"]) > 0
    assert datasets.build(store / "datalog", store / "datasets").version == "v000002"


def test_corrupt_log_stops_build_with_named_error_and_datalog_untouched(store):
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "ticker_market_data"
    )
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(",", ",abc,", 1)  # row 6 gains a field
    path.write_text("\n".join(lines) + "\n")
    before = tree_digest(store / "datalog")
    with pytest.raises(BadInputError) as err:
        datasets.build(store / "datalog", store / "datasets")
    assert path.name in str(err.value) and "row 6: expected 7 fields, found 8" in str(err.value)
    assert datasets.current_version(store / "datasets") is None
    r = datasets.build(store / "datalog", store / "datasets", skip_bad_logs=True)
    assert r.skipped_logs == [path.name]
    assert path.name in datasets.read_manifest(store / "datasets", r.version)["skipped_logs"]
    assert tree_digest(store / "datalog") == before


def test_duplicate_dates_in_a_market_log_are_named(store):
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "ticker_market_data"
    )
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4] + [lines[3]] + lines[4:]) + "\n")
    with pytest.raises(
        BadInputError, match=r"row 5, field 'date'.*more than once \(first at row 4\)"
    ):
        datasets.build(store / "datalog", store / "datasets")


def test_missing_version_is_a_clear_error(tmp_path):
    with pytest.raises(BadInputError, match="run 02_build_datasets.py first"):
        datasets.load_tables(tmp_path)


def _fund_log(root, ts, rows):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["period_end", "announcement_date", "revenue"])
    for c in ("period_end", "announcement_date"):
        frame[c] = pd.to_datetime(frame[c])
    write_log(root, LogName(ts, "vendor", "ticker_fundamental_data", "ACME"), frame)


def _revenue_versions(root):
    _, tables = datasets.load_tables(root)
    f = tables["fundamentals"]
    f = f[(f["ticker"] == "ACME") & (f["metric"] == "revenue")]
    return [(f"{a:%m-%d}", v) for a, v in zip(f["announcement_date"], f["value"], strict=True)]


def test_change_only_compaction_per_metric(tmp_path):
    """D5: a re-query or restatement that repeats a period's figure adds no row; a changed figure
    is kept as a new version; incremental builds equal the bootstrap even when a later log brings
    an earlier version (the build then rebuilds in full)."""
    log_dir, out = tmp_path / "datalog", tmp_path / "datasets"
    _fund_log(log_dir, 1_640_000_000_000_000, [("2020-03-31", "2020-05-01", 10.0)])
    datasets.build(log_dir, out)
    # re-queried later: same figure again with a later "announcement" -> compacted away
    _fund_log(log_dir, 1_640_000_000_000_001, [("2020-03-31", "2020-08-01", 10.0)])
    datasets.build(log_dir, out)
    assert _revenue_versions(out) == [("05-01", 10.0)]
    # restated: a new figure is a new version
    _fund_log(log_dir, 1_640_000_000_000_002, [("2020-03-31", "2020-11-01", 12.0)])
    datasets.build(log_dir, out)
    assert _revenue_versions(out) == [("05-01", 10.0), ("11-01", 12.0)]
    # a late-arriving import of an earlier restatement: the dropped repeat counts again
    _fund_log(log_dir, 1_640_000_000_000_003, [("2020-03-31", "2020-07-01", 11.0)])
    r = datasets.build(log_dir, out)
    expected = [("05-01", 10.0), ("07-01", 11.0), ("08-01", 10.0), ("11-01", 12.0)]
    assert _revenue_versions(out) == expected
    boot = tmp_path / "boot"
    datasets.build(log_dir, boot, full=True)
    assert _revenue_versions(boot) == expected
    m_inc = datasets.read_manifest(out, r.version)["tables"]
    m_boot = datasets.read_manifest(boot, datasets.current_version(boot))["tables"]
    assert m_inc == m_boot


def _random_rows(rng, n, tickers):
    """Rows as a batch of logs gives them: encoded text, days, log times; keys repeat."""
    return pd.DataFrame(
        {
            "source": pd.Categorical(rng.choice(["a", "b"], n)),
            "ticker": pd.Categorical(rng.choice(tickers, n), categories=sorted(set(tickers))),
            "date": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 9, n), "D"),
            "close": rng.normal(size=n),
            "name": rng.choice(["x", "y", None], n).astype(object),
            "log_ts": rng.integers(0, 4, n).astype("int64"),
        }
    )


@pytest.mark.parametrize("seed", range(6))
def test_column_by_column_concat_and_sort_equal_pandas(seed):
    """The builder joins and orders a table one column at a time, so that the parts and the
    table are not in memory twice over (ds_resolve._concat, _in_order); what it gives equals
    pd.concat and sort_values(kind="stable"), text compared as text: parts whose encoded
    columns have different categories, a part lacking a column (pd.concat's own path), repeated
    keys, a missing date and categories out of order (sort_values' own path)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    parts = [
        _random_rows(rng, n, rng.choice(["Z", "B", "AA", "C", "b"], 3).tolist())
        for n in rng.integers(1, 40, 4)
    ]
    if seed == 1:
        parts[2] = parts[2].drop(columns="name")
    if seed == 2:
        parts[0].loc[0:1, "date"] = pd.NaT
    expected = pd.concat(parts, ignore_index=True).astype({"source": object, "ticker": object})
    joined = ds_resolve._concat([p.copy() for p in parts])
    if seed != 1:
        assert isinstance(joined["ticker"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(joined.astype({"source": object, "ticker": object}), expected)

    by = ["source", "ticker", "date", "log_ts"]
    if seed == 3:  # categories out of order: sorted by the text all the same
        joined["ticker"] = joined["ticker"].cat.reorder_categories(
            joined["ticker"].cat.categories[::-1]
        )
    ordered = ds_resolve._in_order(joined.copy(), by)
    pd.testing.assert_frame_equal(
        ordered.astype({"source": object, "ticker": object}).reset_index(drop=True),
        expected.sort_values(by, kind="stable").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(ds_resolve._in_order(ordered.copy(), by), ordered)
    distinct = ordered.drop_duplicates(by, keep="last").reset_index(drop=True)
    if distinct["date"].notna().all():  # in order, keys distinct: the frame itself, no copy
        assert ds_resolve._in_order(distinct, by) is distinct


def test_tables_without_new_rows_keep_the_previous_file(store, monkeypatch):
    """An incremental build shares the previous file of a table no new log touches (the same
    builder wrote the same bytes from the same rows) instead of resolving and writing it again;
    a version built by another builder is resolved afresh. Either way it equals the bootstrap."""
    datasets.build(store / "datalog", store / "datasets")
    resolved, resolve = [], ds_resolve._resolve
    for module in (ds_builder, ds_fold, ds_year_parts):  # all resolve tables
        monkeypatch.setattr(module, "_resolve", lambda t, f: resolved.append(t) or resolve(t, f))
    logs = list_logs(store / "datalog")
    name, path = next((n, p) for n, p in logs if n.data_type == "ticker_market_data")
    ts = max(n.timestamp for n, _ in logs)
    for k, builder in enumerate(["same", "equity_backtest 0.0.1"]):
        current = datasets.current_version(store / "datasets")
        if builder != "same":  # the version in use came from another builder
            manifest = store / "datasets" / current / "manifest.json"
            manifest.write_text(manifest.read_text().replace(ds_builder._BUILDER, builder))
        frame = read_log(path).iloc[:3].assign(close=lambda f, k=k: f["close"] + 1 + k)
        write_log(
            store / "datalog", LogName(ts + 1 + k, name.source, name.data_type, name.label), frame
        )
        resolved.clear()
        r = datasets.build(store / "datalog", store / "datasets")
        incremental = set(resolved)
        boot = datasets.build(store / "datalog", store / f"boot{k}", full=True)
        assert _tables_digest(store, r.version) == _tables_digest_of(
            store / f"boot{k}", boot.version
        )
        if builder == "same":
            assert not {"fundamentals", "constituents", "metadata"} & incremental
            for table in ("fundamentals", "constituents", "metadata"):
                before = (store / "datasets" / current / f"{table}.feather").read_bytes()
                assert (store / "datasets" / r.version / f"{table}.feather").read_bytes() == before
        else:
            assert {"fundamentals", "constituents", "metadata"} <= incremental


def _tables_digest_of(folder, version):
    """Each table's rows and SHA-256 (per year part where partitioned) as its manifest says,
    checked against the files."""
    import hashlib

    tables = datasets.read_manifest(folder, version)["tables"]
    for t, info in tables.items():
        files = {f"{t}/{y}.feather": i for y, i in info.get("parts", {}).items()}
        for name, i in (files or {f"{t}.feather": info}).items():
            assert hashlib.sha256((folder / version / name).read_bytes()).hexdigest() == i["sha256"]
    return tables


@pytest.mark.parametrize("pieces", ["run by run", "joined"])
def test_fold_across_the_chunks_of_the_previous_file(store, tmp_path, monkeypatch, pieces):
    """The fold reads the previous table a column at a time and copies its rows chunk by chunk
    of the file: with a file of many small record batches, re-queried rows at chunk edges, new
    keys before, between and after the old ones, and a new ticker at either end, the folded
    table is byte for byte the table a full resolve of all the rows gives."""
    import numpy as np
    import pyarrow as pa
    from pyarrow import feather

    if pieces == "joined":  # too many runs: each column joined once, then merged by masks
        monkeypatch.setattr(ds_fold, "_MOST_PIECES", 0)
    datasets.build(store / "datalog", store / "datasets")
    _, tables = datasets.load_tables(store / "datasets")
    previous = tables["market"]
    folder = tmp_path / "previous"
    folder.mkdir()
    write = lambda frame, path, **kw: feather.write_feather(  # noqa: E731
        pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd", **kw
    )
    write(previous, folder / "market.feather", chunksize=97)
    stored = ds_fold._Stored(folder, "market")
    assert len(stored.chunk_rows) > 100 and len(stored) == len(previous)

    rng = np.random.default_rng(3)
    requeried = previous.iloc[
        sorted({0, 96, 97, 193, 194, len(previous) - 1, *rng.choice(len(previous), 40).tolist()})
    ]
    tickers = previous["ticker"].astype(str).unique()
    later = previous.groupby("ticker", observed=True).tail(1).iloc[::3]
    earlier = previous.groupby("ticker", observed=True).head(1).iloc[1::4]
    first = previous.iloc[:3].assign(ticker="AAAA")
    last = previous.iloc[:3].assign(ticker="ZZZZ")
    new = pd.concat(
        [
            requeried.astype({"source": object, "ticker": object}).assign(close=-1.0, open=np.nan),
            later.astype({"source": object, "ticker": object}).assign(
                date=later["date"] + pd.Timedelta(days=1)
            ),
            earlier.astype({"source": object, "ticker": object}).assign(
                date=earlier["date"] - pd.Timedelta(days=1)
            ),
            first.astype({"source": object}),
            last.astype({"source": object}),
        ],
        ignore_index=True,
    ).assign(log_ts=previous["log_ts"].max() + 1)
    assert len(tickers) > 3
    for col in ("source", "ticker"):  # encoded as the builder's parsed logs are
        new[col] = pd.Categorical(new[col], categories=sorted(new[col].unique()))

    folded = ds_fold._fold_in("market", stored, new.copy())
    whole = ds_resolve._resolve("market", ds_resolve._concat([previous.copy(), new.copy()]))
    assert folded is not None and len(folded) == len(whole)
    write(folded, tmp_path / "folded.feather")
    write(whole, tmp_path / "whole.feather")
    assert (tmp_path / "folded.feather").read_bytes() == (tmp_path / "whole.feather").read_bytes()
    assert (folded["close"] == -1.0).sum() == len(requeried)  # the newer query won
    assert len(folded) == len(previous) + len(later) + len(earlier) + 6


def test_rows_taken_from_a_stored_table_read_as_its_frame(tmp_path):
    """_Stored.take gives the rows of frame() with frame()'s dtypes, even where the rows taken
    lack the missing value that makes a whole integer column float (or a boolean one object)."""
    import numpy as np
    import pyarrow as pa
    from pyarrow import feather

    table = pa.table(
        {
            "ticker": pa.array(["A", "B", "A", "C"] * 30).dictionary_encode(),
            "date": pa.array(pd.date_range("2020-01-01", periods=120).to_numpy()),
            "count": pa.array([1, 2, None, 4] * 30, pa.int64()),
            "flag": pa.array([True, None, False, True] * 30),
            "name": pa.array(["x", None, "z", "w"] * 30),
            "value": pa.array([0.5, None, 1.5, 2.5] * 30),
        }
    )
    feather.write_feather(table, tmp_path / "market.feather", chunksize=7)
    stored = ds_fold._Stored(tmp_path, "market")
    rows = np.array([0, 3, 7, 8, 119])  # no missing value among them
    whole = stored.frame()
    taken = stored.take(rows)
    pd.testing.assert_frame_equal(taken, whole.iloc[rows].reset_index(drop=True))
    assert taken["count"].dtype == np.float64 and taken["flag"].dtype == object


@pytest.mark.parametrize("damage", ["cut short", "one byte changed"])
@pytest.mark.parametrize("which", ["the year the new rows fold into", "a year shared as it is"])
def test_a_damaged_previous_version_is_named_with_the_way_out(store, damage, which):
    """An incremental build reads the previous version's files and shares the years without
    new rows; a year part Arrow cannot read (cut short by a full disk, say) or whose bytes are
    not those its manifest names stops the build with its path and the --full way out, not a
    traceback and not a damaged file passed on, and the version in use stays; --full then
    rebuilds from the datalog."""
    first = datasets.build(store / "datalog", store / "datasets")
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "ticker_market_data"
    )
    rows = read_log(path).iloc[:2]
    years = sorted(
        p.stem for p in (store / "datasets" / first.version / "market").glob("*.feather")
    )
    year = str(rows["date"].iloc[0].year)
    part = year if which.startswith("the year") else next(y for y in years if y != year)
    market = store / "datasets" / first.version / "market" / f"{part}.feather"
    data = market.read_bytes()
    if damage == "cut short":
        market.write_bytes(data[:5000])
    else:  # a value's byte in the middle of the file: Arrow reads it, the hash does not match
        middle = len(data) // 2
        market.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :])
    later = max(n.timestamp for n, _ in list_logs(store / "datalog")) + 1
    write_log(store / "datalog", LogName(later, name.source, name.data_type, name.label), rows)
    with pytest.raises(
        BadInputError, match=rf"market/{part}\.feather: the dataset version .*--full"
    ):
        datasets.build(store / "datalog", store / "datasets")
    assert datasets.current_version(store / "datasets") == first.version
    again = datasets.build(store / "datalog", store / "datasets", full=True)
    assert again.version != first.version and again.rows["market"] > 0


def test_a_new_day_rewrites_one_year_and_shares_the_others(store):
    """Dataset format 2: the market table is one file per year; a new day's rows rewrite that
    year's file only, and every other year's file is the previous version's own (a hard link,
    no bytes written), as are its market checks and every table the day leaves alone. The
    version and its quality report equal a build from scratch, and the table reads back as
    format 1 stored it whole (the year parts joined in table order)."""
    first = datasets.build(store / "datalog", store / "datasets")
    logs = list_logs(store / "datalog")
    markets = [(n, p) for n, p in logs if n.data_type == "ticker_market_data"]
    ts = max(n.timestamp for n, _ in logs)
    last_day = max(read_log(p)["date"].max() for _, p in markets)
    for k, (name, path) in enumerate(markets[:3]):  # the next day for three tickers
        day = read_log(path).iloc[-1:].assign(date=last_day + pd.Timedelta(days=1))
        write_log(
            store / "datalog", LogName(ts + 1 + k, name.source, name.data_type, name.label), day
        )
    second = datasets.build(store / "datalog", store / "datasets")
    old, new = (store / "datasets" / v for v in (first.version, second.version))
    years = sorted(p.name for p in (old / "market").iterdir())
    assert len(years) > 2 and (new / "market").is_dir() and not (new / "market.feather").exists()
    changed = {f"{(last_day + pd.Timedelta(days=1)).year}.feather"}
    for year in sorted(p.name for p in (new / "market").glob("*.feather")):
        same_file = year in years and (old / "market" / year).samefile(new / "market" / year)
        assert same_file == (year not in changed), year
        checks = year.replace(".feather", ".checks")  # the part's market checks, kept
        for file in sorted((new / "market" / checks).rglob("*.feather")):
            was = old / "market" / file.relative_to(new / "market")
            assert (was.is_file() and was.samefile(file)) == same_file, file
    for table in ("fundamentals", "constituents", "metadata", "regimes"):
        assert (old / f"{table}.feather").samefile(new / f"{table}.feather")
    kept = sorted((new / "fundamentals.checks").rglob("*.feather"))  # its summary, shared too
    assert kept and all(f.samefile(old / f.relative_to(new)) for f in kept)
    boot = datasets.build(store / "datalog", store / "boot", full=True)
    assert _tables_digest(store, second.version) == _tables_digest_of(store / "boot", boot.version)
    # the quality report from the kept checks of the shared years equals the one from scratch
    for name in ("quality_report.json", "quality_report.md"):
        ours = (new / name).read_text().replace(second.version, "vX")
        assert ours == (store / "boot" / boot.version / name).read_text().replace(
            boot.version, "vX"
        )
    market = datasets.load_table(new, "market")
    assert (market["date"] == last_day + pd.Timedelta(days=1)).sum() == 3
    pd.testing.assert_frame_equal(
        market,
        market.sort_values(["source", "ticker", "date"], kind="stable").reset_index(drop=True),
    )


def test_a_format_1_version_reads_and_the_next_build_rebuilds_it_as_format_2(store):
    """A version built before dataset format 2 (every table whole, no "format" in its manifest)
    reads as it did, tables equal to the format-2 version of the same logs; the next build
    leaves it as it is and writes format 2 from every log, equal to a build from scratch."""
    import json

    import pyarrow as pa
    from pyarrow import feather

    built = datasets.build(store / "datalog", store / "datasets")
    _, tables = datasets.load_tables(store / "datasets")
    folder = store / "datasets" / built.version
    old = store / "datasets" / "v000009"  # the same tables as format 1 wrote them
    shutil.copytree(folder, old)
    shutil.rmtree(old / "market")
    table = pa.Table.from_pandas(tables["market"], preserve_index=False)
    feather.write_feather(table, old / "market.feather", compression="zstd")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["format"]
    manifest["version"] = "v000009"
    (old / "manifest.json").write_text(json.dumps(manifest))
    (store / "datasets" / "CURRENT").write_text("v000009\n")
    version, again = datasets.load_tables(store / "datasets")
    assert version == "v000009"
    for t in tables:
        pd.testing.assert_frame_equal(again[t], tables[t])
    name, path = next(
        (n, p) for n, p in list_logs(store / "datalog") if n.data_type == "ticker_market_data"
    )
    later = max(n.timestamp for n, _ in list_logs(store / "datalog")) + 1
    write_log(
        store / "datalog",
        LogName(later, name.source, name.data_type, name.label),
        read_log(path).iloc[:2],
    )
    before = tree_digest(old)
    after = datasets.build(store / "datalog", store / "datasets")
    assert after.version == "v000010" and after.new_logs == len(list_logs(store / "datalog"))
    assert datasets.read_manifest(store / "datasets", after.version)["format"] == 2
    assert tree_digest(old) == before
    boot = datasets.build(store / "datalog", store / "boot", full=True)
    assert _tables_digest(store, after.version) == _tables_digest_of(store / "boot", boot.version)


def test_a_table_read_by_column_gives_the_whole_table_s_columns(small_store, tmp_path):
    """datasets.Columns (how the panel reads the market table, a column at a time) gives each
    column with the whole-table read's dtype, its rows in the stored order (year part by year
    part: the whole table's rows, sorted by year first); a panel built from it equals one built
    from whole tables; a version without the table reads it empty."""
    from equity_backtest.config import Parameters
    from equity_backtest.data.panel import panel_from_tables
    from tests.conftest import SMALL

    version, whole = datasets.load_tables(small_store / "datasets")
    _, lazy = datasets.load_tables(small_store / "datasets", version, by_column=("market",))
    by_year = whole["market"]["date"].dt.year.to_numpy()
    stored = whole["market"].iloc[np.argsort(by_year, kind="stable")].reset_index(drop=True)
    assert len(set(by_year)) > 1
    for column in whole["market"].columns:
        pd.testing.assert_series_equal(lazy["market"][column], stored[column])
    spec = Parameters(**SMALL, datasets_dir=str(small_store / "datasets"))
    one, two = panel_from_tables(version, whole, spec), panel_from_tables(version, lazy, spec)
    for name in one.fields:
        np.testing.assert_array_equal(one.fields[name], two.fields[name])
    np.testing.assert_array_equal(one.mark, two.mark)
    np.testing.assert_array_equal(one.total_return, two.total_return)
    np.testing.assert_array_equal(one.volatility(20), two.volatility(20))
    assert datasets.Columns(tmp_path, "market")["close"].empty


def test_a_damaged_year_part_is_named_when_read(store):
    """Reading a version (load_tables, or the panel's read by column or by part) whose year part Arrow
    cannot read names the file and the way out (--full), not a traceback."""
    first = datasets.build(store / "datalog", store / "datasets")
    part = sorted((store / "datasets" / first.version / "market").glob("*.feather"))[1]
    part.write_bytes(part.read_bytes()[:5000])
    with pytest.raises(
        BadInputError, match=rf"{part.name}: this dataset file cannot be read.*--full"
    ):
        datasets.load_tables(store / "datasets")
    with pytest.raises(BadInputError, match=rf"{part.name}: this dataset file cannot be read"):
        datasets.Columns(store / "datasets" / first.version, "market")["close"]
    with pytest.raises(BadInputError, match=rf"{part.name}: this dataset file cannot be read"):
        list(datasets.Columns(store / "datasets" / first.version, "market").parts(["close"]))


def test_the_manifest_is_json_dumps_text_to_the_byte():
    """builder.manifest_text lays out the list of logs itself (for speed): the text must be
    json.dumps(manifest, indent=1, sort_keys=True), odd file names, one log and none included."""
    import json
    import random

    rng = random.Random(3)
    names = [f"17000000000{i:05d}__sim__ticker_market_data__T{i}.csv" for i in range(500)]
    names += ['1700000000000000__s__metadata__we"ird\\\\ \u00e9\u2603\x01.csv']
    logs = [{"file": f, "sha256": f"{rng.getrandbits(256):064x}"} for f in sorted(names)]
    manifest = {
        "format": 2, "version": "v000002", "previous_version": None, "builder": "b",
        "logs": logs, "new_logs": 3, "skipped_logs": ["x.csv"],
        "tables": {"market": {"rows": 1, "parts": {"2001": {"rows": 1, "sha256": "ab"}}}},
    }  # fmt: skip
    for entries in (logs, logs[:1], []):
        m = {**manifest, "logs": entries}
        assert ds_builder.manifest_text(m) == json.dumps(m, indent=1, sort_keys=True)


@pytest.mark.parametrize("damage", ["missing", "cut short", "a frame lost"])
def test_fundamentals_kept_without_their_summary_are_read_and_summarised_again(
    store, monkeypatch, damage
):
    """An incremental build that leaves the fundamentals as they are reads only the summary
    kept beside them (fundamentals.checks/), never the table; where the base version has none
    whole (built before they were kept, or damaged), the table is read and summarised again,
    and the quality report is the one a build from scratch writes."""
    first = datasets.build(store / "datalog", store / "datasets")
    checks = store / "datasets" / first.version / "fundamentals.checks"
    reads = []
    real_frame = ds_fold._Stored.frame

    def frame(self, *args, **kwargs):
        reads.append(self.name)
        return real_frame(self, *args, **kwargs)

    monkeypatch.setattr(ds_fold._Stored, "frame", frame)
    shares = next(checks.rglob("shares.feather"))
    if damage == "missing":
        shutil.rmtree(checks)
    elif damage == "cut short":
        shares.write_bytes(shares.read_bytes()[:50])
    else:
        shares.unlink()
    logs = list_logs(store / "datalog")
    name, path = next((n, p) for n, p in logs if n.data_type == "ticker_market_data")
    day = read_log(path).iloc[-1:].assign(date=read_log(path)["date"].max() + pd.Timedelta(days=1))
    ts = max(n.timestamp for n, _ in logs) + 1
    write_log(store / "datalog", LogName(ts, name.source, name.data_type, name.label), day)
    second = datasets.build(store / "datalog", store / "datasets")
    assert reads.count("fundamentals") == 1  # read once, to summarise it again
    reads.clear()
    write_log(store / "datalog", LogName(ts + 1, name.source, name.data_type, name.label), day)
    third = datasets.build(store / "datalog", store / "datasets")
    assert "fundamentals" not in reads  # the summary made again was kept: the table not read
    boot = datasets.build(store / "datalog", store / "boot", full=True)
    for version in (second.version, third.version):
        ours = (store / "datasets" / version / "quality_report.json").read_text()
        theirs = (store / "boot" / boot.version / "quality_report.json").read_text()
        if version == third.version:
            assert ours.replace(version, "vX") == theirs.replace(boot.version, "vX")
        assert (
            json.loads(ours)["sources"][0]["members_without_fundamentals"]
            == json.loads(theirs)["sources"][0]["members_without_fundamentals"]
        )


@pytest.mark.parametrize("encoded", [False, True])
@pytest.mark.parametrize("missing", [False, True])
def test_change_only_compaction_equals_a_groupby_shift(encoded, missing):
    """The fundamentals keep a later version of a period's figure only where its value differs
    from the version before it: the same rows as pandas' groupby(...).shift() on the rows sorted
    by group and announcement, with ties, missing values and missing keys (grouped together)."""
    rng = np.random.default_rng(3)
    n = 5000
    none = [None] if missing else []
    frame = pd.DataFrame(
        {
            "source": rng.choice(["a", "b"], n),
            "ticker": rng.choice(["X", "Y", "Z", *none], n),
            "period_end": rng.choice(pd.to_datetime(["2020-03-31", "2020-06-30", *none]), n),
            "announcement_date": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 200, n), "D"),
            "metric": rng.choice(["ebit", "revenue"], n),
            "value": rng.choice([1.0, 2.0, np.nan], n),
            "log_ts": np.arange(n),
        }
    )
    if encoded:
        frame = frame.astype({c: "category" for c in ("source", "ticker", "metric")})
    group = ["source", "ticker", "metric", "period_end"]
    ordered = frame.sort_values([*group, "announcement_date"], kind="stable")
    prev = ordered.groupby(group, dropna=False, observed=True, sort=False)["value"].shift()
    expected = ordered[~(prev == ordered["value"]).to_numpy()]
    got = ds_resolve._changes_only(frame.copy())
    assert 0 < len(got) < n
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.reset_index(drop=True), check_exact=True
    )


def test_fundamentals_logs_become_rows_as_a_melt_of_each_log_in_turn():
    """The builder turns a batch of fundamentals logs into rows without pandas' melt (and with
    the metric dictionary-encoded); the reference is melt itself, one log at a time, log after
    log, each log metric by metric, the rows without a value left out."""
    rng = np.random.default_rng(5)
    names = [LogName(10 + k, "sim", "ticker_fundamental_data", t) for k, t in enumerate("QAB")]
    logs = []
    for _ in names:
        n = int(rng.integers(1, 6))
        logs.append(
            pd.DataFrame(
                {
                    "period_end": pd.date_range("2020-03-31", periods=n, freq="QE"),
                    "announcement_date": pd.date_range("2020-05-01", periods=n, freq="91D"),
                    "revenue": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
                    "ebit": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
                    "capex": np.full(n, np.nan),
                }
            )
        )
    owner = np.repeat(np.arange(len(logs)), [len(f) for f in logs])
    got = ds_builder._log_rows(names, pd.concat(logs, ignore_index=True), owner)
    want = pd.concat(
        [
            f.assign(ticker=name.label)
            .melt(["ticker", "period_end", "announcement_date"], var_name="metric")
            .dropna(subset=["value"])
            .assign(source="sim", log_ts=name.timestamp)
            for name, f in zip(names, logs, strict=True)
        ],
        ignore_index=True,
    )[["source", "ticker", "period_end", "announcement_date", "metric", "value", "log_ts"]]
    assert isinstance(got["metric"].dtype, pd.CategoricalDtype)
    text = {"source": object, "ticker": object, "metric": object}
    pd.testing.assert_frame_equal(got.astype(text), want.astype(text))
