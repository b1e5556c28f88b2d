"""A build from scratch resolves a partitioned table a year at a time (year_parts.ByYear)
instead of resolving the whole table and cutting it by year. The reference is that whole-table
path, split(_resolve(_concat(frames))): every part must be the same frame and write the same
bytes, whatever re-queries, partial responses, sources and batch orders the rows hold."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from equity_backtest.data import datasets
from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log
from equity_backtest.data.datasets import builder as ds_builder
from equity_backtest.data.datasets import year_parts
from equity_backtest.data.datasets.resolve import _concat, _resolve
from equity_backtest.data.vocabulary import MARKET_FIELDS
from tests.conftest import tree_digest


def batch(rng, tickers: list[str], sources: list[str], log_ts: int) -> pd.DataFrame:
    """Market rows as the builder's reader gives them: text dictionary-encoded on the batch's
    own sorted values, days over three years (some repeated from other batches), fields
    sometimes missing (a partial response)."""
    n = int(rng.integers(5, 60))
    days = pd.bdate_range("2019-12-20", "2022-01-10")
    frame = pd.DataFrame(
        {
            "source": pd.Categorical(rng.choice(sources, n)),
            "ticker": pd.Categorical(rng.choice(tickers, n)),
            "date": days[rng.integers(0, len(days), n)],
            **{
                f: np.where(rng.random(n) < 0.15, np.nan, rng.random(n) * 100)
                for f in MARKET_FIELDS
            },
            "log_ts": np.full(n, log_ts, dtype=np.int64),
        }
    )
    return frame.drop_duplicates(["source", "ticker", "date"]).reset_index(drop=True)


def part_bytes(tmp_path, name: str, frame: pd.DataFrame) -> bytes:
    path = tmp_path / f"{name}.feather"
    feather.write_feather(
        pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd"
    )
    return path.read_bytes()


def cut_and_resolved(frames: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    by_year = year_parts.ByYear("market")
    for frame in frames:
        by_year.add(frame)
    return dict(by_year.parts())


@pytest.mark.parametrize("seed", range(10))
def test_a_table_resolved_a_year_at_a_time_is_the_whole_table_cut_by_year(seed, tmp_path):
    rng = np.random.default_rng(seed)
    tickers = rng.choice(["AA", "B", "ZZ", "C", "b", "AB"], 4, replace=False).tolist()
    frames = [
        batch(rng, tickers, ["sim", "files"] if seed % 3 else ["sim"], int(ts))
        for ts in rng.permutation(np.arange(1, int(rng.integers(3, 7)) + 1))  # (logs out of order)
    ]
    if seed >= 7:  # a batch of other columns (its second or later): the table resolved whole
        k = min(seed - 6, len(frames) - 1)
        frames[k] = frames[k].assign(pe=1.5) if seed == 7 else frames[k].drop(columns="volume")
    want = dict(year_parts.split("market", _resolve("market", _concat([f.copy() for f in frames]))))
    got = cut_and_resolved(frames)
    assert list(got) == list(want) and len(got) >= 2
    for year, part in got.items():
        pd.testing.assert_frame_equal(part, want[year], check_exact=True)
        assert part_bytes(tmp_path, "a", part) == part_bytes(tmp_path, "b", want[year])


def whole_table(self, frame):
    """ByYear.add keeping every batch whole: the table resolved whole, as before the cut."""
    if len(frame):
        self.whole.append(frame)


def test_a_build_from_scratch_writes_the_bytes_of_the_whole_table_path(
    small_store, tmp_path, monkeypatch
):
    """02 --full on a datalog with re-queries (a newer partial one, an older one, another
    source's): the year-at-a-time build and the whole-table build (every batch kept whole)
    write the same files, and the same manifest."""
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    logs = list_logs(tmp_path / "datalog")
    name, path = next((n, p) for n, p in logs if n.data_type == "ticker_market_data")
    rows = read_log(path).iloc[::40].copy()  # (days of every year the log holds)
    latest = max(n.timestamp for n, _ in logs)
    for stamp, source, changed in [
        (latest + 1, name.source, rows.assign(close=rows["close"] * 1.01, open=np.nan)),
        (name.timestamp - 1, name.source, rows.assign(close=1.0)),
        (latest + 2, "othervendor", rows.assign(volume=1.0)),
    ]:
        write_log(tmp_path / "datalog", LogName(stamp, source, name.data_type, name.label), changed)
    ours = datasets.build(tmp_path / "datalog", tmp_path / "ours", full=True)
    monkeypatch.setattr(ds_builder.year_parts.ByYear, "add", whole_table)
    whole = datasets.build(tmp_path / "datalog", tmp_path / "whole", full=True)
    assert ours.rows == whole.rows and ours.rows["market"] > 0
    assert tree_digest(tmp_path / "ours" / ours.version) == tree_digest(
        tmp_path / "whole" / whole.version
    )
    assert len(list((tmp_path / "ours" / ours.version / "market").glob("*.feather"))) > 2
