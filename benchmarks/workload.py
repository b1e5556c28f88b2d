"""The benchmarks' S&P-500-sized simulated store, built once into benchmarks/.cache/ and reused,
with what the benchmark scripts share: the size options and the equal-weight rule."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import time
from pathlib import Path

import pandas as pd

from equity_backtest.config import Parameters
from equity_backtest.data import datasets
from equity_backtest.data.vendors import simulated

REPO = Path(__file__).resolve().parents[1]


def store(tickers: int, index_size: int, years: int) -> Parameters:
    """Parameters over a cached simulated store of `tickers` ever, an index of `index_size`, and
    `years` of daily bars from 2004 (a backtest from 2005, monthly rebalancing)."""
    start, end = dt.date(2004, 1, 1), dt.date(2004 + years, 12, 31)
    # the simulator's source in the name: a changed simulator builds a new store
    digest = hashlib.sha256()
    for source in sorted(Path(simulated.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    code = digest.hexdigest()[:8]
    cache = REPO / "benchmarks" / ".cache" / f"{tickers}_{index_size}_{years}_{code}"
    params = Parameters(
        seed=1, sim_n_tickers=tickers, sim_index_size=index_size, index=f"TOP{index_size}",
        sim_start=start, sim_end=end, start=dt.date(2005, 1, 1), end=end, rebalance="monthly",
        datalog_dir=str(cache / "datalog"), datasets_dir=str(cache / "datasets"),
        results_dir=str(cache / "results"),
    )  # fmt: skip
    if datasets.current_version(params.datasets_dir) is None:
        t = time.perf_counter()
        settings = simulated.SimulationSettings(tickers, index_size, start, end, 1)
        simulated.query(settings, params.datalog_dir)
        datasets.build(params.datalog_dir, params.datasets_dir)
        print(f"built the benchmark store once in {time.perf_counter() - t:.1f} s ({cache})")
    return params


def size_arguments(
    ap: argparse.ArgumentParser, tickers: int = 700, index_size: int = 500, years: int = 20
) -> None:
    """--tickers, --index-size and --years, with a script's defaults (S&P-500-sized unless said)."""
    ap.add_argument("--tickers", type=int, default=tickers)
    ap.add_argument("--index-size", type=int, default=index_size)
    ap.add_argument("--years", type=int, default=years)


def equal_weights(view, params):
    """The same weight for every point-in-time member."""
    u = view.universe
    return pd.Series(1.0 / len(u), index=u)
