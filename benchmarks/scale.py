#!/usr/bin/env python3
"""Scale benchmark: the whole data path at a chosen universe size, towards CRSP-sized histories.

    python benchmarks/scale.py [--tickers 2000] [--index-size 1000] [--years 21] [--keep FOLDER]
    python benchmarks/scale.py --keep FOLDER --more-days 3    (02 after one more day, 3 times)

Steps, each timed, with the peak memory of the process that ran it:
  01  the simulated vendor writes the datalog (a subprocess running 01_query_vendor.py);
  02  the builder compacts it from scratch (a subprocess running 02_build_datasets.py --full);
  02+ an incremental build after one more day: every ticker that traded on the dataset's last
      day gets a newer log with one more session (its last row, a day later), then 02 runs again
      (a kept folder gains another day on each run);
  panel   the dataset into the engine's panel (built; written to the panel cache, timed apart;
          then loaded from the cache);
  loop    equal weights over the point-in-time members, monthly, with the default costs and
          volume caps, in asset-days per second (all tickers ever x heartbeats).
The work folder is temporary, and deleted at the end (also after an error or Ctrl-C), unless
--keep names one (reused if it holds a datalog).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workload  # noqa: E402  (benchmarks/workload.py, next to this file)
from measure import own_peak_mb, run_script  # noqa: E402

from equity_backtest.config import Parameters  # noqa: E402
from equity_backtest.data import calendars, datasets, panel_cache  # noqa: E402
from equity_backtest.data.datalog import LogName, list_logs, write_log  # noqa: E402
from equity_backtest.data.panel import load_panel  # noqa: E402
from equity_backtest.engine.loop import run_backtest  # noqa: E402


def _stage(folder: Path, script: str, *args: str) -> tuple[float, float]:
    """Run a numbered script in its own process; (seconds, peak MB of that process)."""
    return run_script(REPO / script, "--parameters", "parameters.py", "--quiet", *args, cwd=folder)


def _one_more_day(folder: Path) -> int:
    """A newer market log with one more session for every ticker that traded on the latest day
    of the current dataset (so a rerun on a kept folder adds another day each time)."""
    version = datasets.current_version(folder / "datasets")
    last_part = datasets.table_files(folder / "datasets" / version, "market")[-1]
    market = pd.read_feather(last_part)  # (the last year's part, or a format-1 table whole)
    last = market["date"].max()
    rows = market[market["date"] == last]
    following = calendars.sessions("XNYS", last.date(), (last + pd.Timedelta(days=10)).date())
    next_day = following[following > last][0]
    queried = (next_day + pd.Timedelta(days=1)).value // 1000  # the day after, as the vendor
    stamp = max(queried, max(name.timestamp for name, _ in list_logs(folder / "datalog")) + 1)
    fields = ["date", "open", "high", "low", "close", "volume", "market_cap"]
    for k, row in enumerate(rows.itertuples(index=False)):
        frame = pd.DataFrame([row], columns=rows.columns)[fields].assign(date=next_day)
        name = LogName(stamp + k, str(row.source), "ticker_market_data", str(row.ticker))
        write_log(folder / "datalog", name, frame)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    workload.size_arguments(ap, tickers=2000, index_size=1000, years=21)
    ap.add_argument("--keep", help="work folder to keep (and reuse)")
    ap.add_argument(
        "--more-days",
        type=int,
        metavar="N",
        help="with --keep FOLDER (a kept run): only add one more day N times, timing 02 each time",
    )
    args = ap.parse_args()
    if args.more_days:
        if not (args.keep and (Path(args.keep) / "datasets").is_dir()):
            ap.error("--more-days needs --keep FOLDER of an earlier run")
        for _ in range(args.more_days):
            added = _one_more_day(Path(args.keep))
            seconds, peak = _stage(Path(args.keep), "02_build_datasets.py")
            print(
                f"02 after one more day: {seconds:7.1f} s, peak {peak:6.0f} MB ({added} new logs)"
            )
        return
    folder = Path(args.keep or tempfile.mkdtemp(prefix="scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        measure_all(folder, args)
    finally:
        if not args.keep:  # (a CRSP-sized run writes about 9 GB)
            shutil.rmtree(folder, ignore_errors=True)


def measure_all(folder: Path, args: argparse.Namespace) -> None:
    start, end = dt.date(2004, 1, 1), dt.date(2004 + args.years - 1, 12, 31)
    values = dict(
        seed=1, sim_n_tickers=args.tickers, sim_index_size=args.index_size,
        index=f"TOP{args.index_size}", sim_start=start, sim_end=end,
        start=dt.date(2005, 1, 1), end=end, rebalance="monthly",
        datalog_dir="datalog", datasets_dir="datasets", results_dir="results",
    )  # fmt: skip
    (folder / "parameters.py").write_text(
        "import datetime\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items()) + "\n"
    )
    print(f"{args.tickers} tickers ever, index TOP{args.index_size}, {args.years} years ({folder})")
    if not (folder / "datalog").is_dir():
        seconds, peak = _stage(folder, "01_query_vendor.py")
        print(f"01 (simulated vendor): {seconds:7.1f} s, peak {peak:6.0f} MB")
    logs = list_logs(folder / "datalog")
    size = sum(p.stat().st_size for _, p in logs) / 1e6
    print(f"   datalog: {len(logs)} logfiles, {size:.0f} MB")
    seconds, peak = _stage(folder, "02_build_datasets.py", "--full")
    print(f"02 from scratch:       {seconds:7.1f} s, peak {peak:6.0f} MB")
    added = _one_more_day(folder)
    seconds, peak = _stage(folder, "02_build_datasets.py")
    print(f"02 after one more day: {seconds:7.1f} s, peak {peak:6.0f} MB ({added} new logs)")

    params = Parameters(**{**values, "datalog_dir": str(folder / "datalog"),
                           "datasets_dir": str(folder / "datasets"),
                           "results_dir": str(folder / "results")})  # fmt: skip
    panel_cache.clear(params.datasets_dir)
    store, stored = panel_cache._store, []

    def timed_store(*args) -> None:  # (the cache's write, timed apart from the build)
        t = time.perf_counter()
        store(*args)
        stored.append(time.perf_counter() - t)

    panel_cache._store = timed_store
    t = time.perf_counter()
    panel = load_panel(params)
    built = time.perf_counter() - t - sum(stored)
    panel_cache._store = store
    t = time.perf_counter()
    panel = load_panel(params)
    cached = time.perf_counter() - t
    print(f"panel: built in {built:.1f} s, written to the panel cache in {sum(stored):.1f} s, "
          f"loaded from the cache in {cached:.2f} s")  # fmt: skip
    t = time.perf_counter()
    result = run_backtest(panel, params, workload.equal_weights)
    seconds = time.perf_counter() - t
    asset_days = len(result.runtime_log) * len(panel.tickers)
    print(
        f"loop: {seconds:.2f} s for {len(result.runtime_log)} heartbeats x {len(panel.tickers)} "
        f"tickers = {asset_days / seconds / 1e6:.1f} M asset-days/s"
    )
    print(f"peak memory of this process: {own_peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
