"""The panel cache: a cached panel is the built panel, bit for bit; it is never reused for other
data or settings, a damaged entry is rebuilt, and the builder's warnings are logged on every load."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import datasets, panel_cache
from equity_backtest.data.panel import load_panel
from equity_backtest.data.vendors import simulated
from tests.conftest import params_for, small_settings


@pytest.fixture
def store(tmp_path, small_store):
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    shutil.rmtree(tmp_path / "datasets" / panel_cache.FOLDER, ignore_errors=True)
    return tmp_path


def _same(a, b) -> None:
    assert a.dataset_version == b.dataset_version and list(a.tickers) == list(b.tickers)
    assert a.dates.equals(b.dates)
    for name in a.fields:
        np.testing.assert_array_equal(a.fields[name], b.fields[name])
    for name in ("mark", "total_return", "membership", "list_of_day"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for kind in ("splits", "dividends", "delistings"):
        ea, eb = getattr(a.events, kind), getattr(b.events, kind)
        assert ea.keys() == eb.keys()
        for t in ea:
            np.testing.assert_array_equal(ea[t][0], eb[t][0])
            np.testing.assert_array_equal(ea[t][1], eb[t][1])
    assert a.fundamentals.keys() == b.fundamentals.keys()
    for m in a.fundamentals:
        for f in dataclasses.fields(a.fundamentals[m]):
            np.testing.assert_array_equal(
                getattr(a.fundamentals[m], f.name), getattr(b.fundamentals[m], f.name)
            )
    pd.testing.assert_frame_equal(a.metadata, b.metadata)
    for days in a._volatility:
        np.testing.assert_array_equal(a._volatility[days], b._volatility[days])


def test_a_cached_panel_is_the_built_panel_and_needs_no_tables(store, monkeypatch):
    params = params_for(store)
    built = load_panel(params)
    entries = list((store / "datasets" / panel_cache.FOLDER).iterdir())
    assert len(entries) == 1 and (entries[0] / "buffers.bin").stat().st_size > 0
    assert params.impact_vol_days in built._volatility  # the engine's window comes with it

    def no_tables(*a, **k):
        raise AssertionError("a cached panel does not read the dataset's tables")

    monkeypatch.setattr("equity_backtest.data.panel.load_tables", no_tables)
    cached = load_panel(params)
    _same(built, cached)
    cached.mark[0, 0] = -1.0  # mapped copy-on-write: the engine may write, the cache is untouched
    monkeypatch.undo()
    _same(built, load_panel(params))


def test_other_settings_or_a_rebuilt_version_never_reuse_a_panel(store):
    first = load_panel(params_for(store))
    other_end = load_panel(params_for(store, end=pd.Timestamp("2012-12-31").date()))
    assert other_end.dates[-1] == pd.Timestamp("2012-12-31")
    assert len(list((store / "datasets" / panel_cache.FOLDER).iterdir())) == 2
    # the same version name built again from other data: the manifest differs, so the key does
    kept = store / "kept_cache"
    shutil.copytree(store / "datasets" / panel_cache.FOLDER, kept)
    shutil.rmtree(store / "datasets")
    simulated.query(small_settings(seed=8), store / "other_log")
    datasets.build(store / "other_log", store / "datasets")
    shutil.copytree(kept, store / "datasets" / panel_cache.FOLDER)  # the old entries still there
    assert datasets.current_version(store / "datasets") == first.dataset_version
    other = load_panel(params_for(store))
    _same(other, load_panel(params_for(store, panel_cache=False)))
    assert list(other.tickers) != list(first.tickers)


def test_a_damaged_entry_is_rebuilt(store):
    params = params_for(store)
    built = load_panel(params)
    (entry,) = (store / "datasets" / panel_cache.FOLDER).iterdir()
    (entry / "buffers.bin").write_bytes(b"")  # truncated by a full disk, say
    _same(built, load_panel(params))
    (entry,) = (store / "datasets" / panel_cache.FOLDER).iterdir()
    _same(built, load_panel(params))


def test_without_the_cache_nothing_is_written(store):
    load_panel(params_for(store, panel_cache=False))
    assert not (store / "datasets" / panel_cache.FOLDER).exists()


def test_the_builders_warnings_are_logged_again_on_a_cached_load(store, caplog):
    builder = logging.getLogger("equity_backtest.data.panel")

    def build():
        builder.warning("XYZ stops trading after 2012-03-01 with no delisting record")
        return {"panel": np.arange(100_000.0)}

    manifest_dir = store / "datasets" / datasets.current_version(store / "datasets")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            out = panel_cache.load_or_build(store / "datasets", manifest_dir.name, ("s",), build)
            np.testing.assert_array_equal(out["panel"], np.arange(100_000.0))
    said = [r.getMessage() for r in caplog.records if "XYZ stops trading" in r.getMessage()]
    assert len(said) == 2
