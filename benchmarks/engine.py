#!/usr/bin/env python3
"""Engine benchmark: an S&P-500-sized simulated universe through the heartbeat loop.

About 700 tickers ever, an index of the top 500, 20 years of daily heartbeats, monthly rebalance,
with the point-in-time universe, volume caps, costs and delistings on. Prints asset-days per
second for the loop alone, with checkpoints every 250 heartbeats, and for the whole 03 process
(loading and archive included, the panel from its cache), the panel's build and cached load, and
peak memory. The datalog and datasets are built once into
benchmarks/.cache/ (reused on later runs).

    python benchmarks/engine.py [--weights cap|equal] [--tickers 700] [--index-size 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workload  # noqa: E402  (benchmarks/workload.py, next to this file)
from measure import own_peak_mb, run_script  # noqa: E402

from equity_backtest.data import panel_cache  # noqa: E402
from equity_backtest.data.panel import load_panel  # noqa: E402
from equity_backtest.engine.checkpoint import Checkpoints  # noqa: E402
from equity_backtest.engine.loop import run_backtest  # noqa: E402


def cap_weights(view, params):
    caps = view.market(view.universe)["market_cap"].dropna()
    return caps / caps.sum()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--weights", choices=["cap", "equal"], default="cap")
    workload.size_arguments(ap)
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats; best and median printed")
    args = ap.parse_args()

    params = workload.store(args.tickers, args.index_size, args.years)
    cache = Path(params.datasets_dir).parent

    rule = cap_weights if args.weights == "cap" else workload.equal_weights
    build_times, load_times, loop_times, process_times = [], [], [], []
    for _ in range(args.repeat):  # built from the dataset's tables (the cache cleared first)
        panel_cache.clear(params.datasets_dir)
        t = time.perf_counter()
        panel = load_panel(params)
        build_times.append(time.perf_counter() - t)
    for _ in range(args.repeat):  # from the panel cache that the last build wrote
        t = time.perf_counter()
        panel = load_panel(params)
        load_times.append(time.perf_counter() - t)
    run_backtest(panel, params, rule)  # warm-up (imports, caches)
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = run_backtest(panel, params, rule)
        loop_times.append(time.perf_counter() - t)
    asset_days = len(result.runtime_log) * len(panel.tickers)
    peak_mb = own_peak_mb()
    # the same loop writing a checkpoint every 250 heartbeats (03's default when a run is long)
    checkpointed, sizes = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            saved = Checkpoints(Path(folder), "benchmark", 250, 0.0)
            t = time.perf_counter()
            run_backtest(panel, params, rule, checkpoints=saved)
            checkpointed.append(time.perf_counter() - t)
            sizes.append(saved.path.stat().st_size / 1e6 if saved.path.exists() else 0.0)
    n_saved = (len(result.runtime_log) - 1) // 250

    algo = cache / f"{args.weights}_weights.py"
    algo.write_text(ALGORITHMS[args.weights])
    params_file = cache / "parameters.py"
    values = {k: v for k, v in params.as_dict().items() if k != "fundamental_lag_days"}
    params_file.write_text("\n".join(f"{k} = {v!r}" for k, v in values.items()) + "\n")
    child_peaks = []
    for _ in range(args.repeat):
        run_dir = cache / "results" / f"bench_{time.time_ns()}"
        seconds, peak = run_script(
            REPO / "03_trade.py", "--parameters", str(params_file), "--algorithm", str(algo),
            "--run-dir", str(run_dir), "--quiet", cwd=cache,
        )  # fmt: skip
        process_times.append(seconds)
        child_peaks.append(peak)
    child_peak_mb = max(child_peaks)

    def rate(times):
        return f"{asset_days / min(times) / 1e6:5.2f} M asset-days/s"

    print(
        f"universe: {len(panel.tickers)} tickers ever, index TOP{args.index_size}, "
        f"{len(result.runtime_log)} heartbeats, monthly rebalance, {args.weights} weights; "
        f"best (median) of {args.repeat}"
    )
    print(f"panel build:       {_best(build_times)} (from the dataset, the panel cache written)")
    print(f"panel load:        {_best(load_times)} (from the panel cache)")
    print(f"heartbeat loop:    {_best(loop_times)} = {rate(loop_times)}")
    print(
        f"loop, checkpointed: {_best(checkpointed)}, {n_saved} checkpoints every 250 heartbeats, "
        f"the last {max(sizes):.0f} MB"
    )
    print(f"whole 03 process:  {_best(process_times)} = {rate(process_times)}")
    print(
        f"peak memory:       {peak_mb:.0f} MB (this process), {child_peak_mb:.0f} MB (03 process)"
    )


def _best(times: list[float]) -> str:
    return f"{min(times):5.2f} s ({statistics.median(times):5.2f} s)"


ALGORITHMS = {
    "cap": (
        "def compute_weights(view, params):\n"
        "    caps = view.market(view.universe)['market_cap'].dropna()\n"
        "    return caps / caps.sum()\n"
    ),
    "equal": (
        "import pandas as pd\n\n\n"
        "def compute_weights(view, params):\n"
        "    u = view.universe\n"
        "    return pd.Series(1.0 / len(u), index=u)\n"
    ),
}


if __name__ == "__main__":
    main()
