#!/usr/bin/env python3
"""Builder benchmark: a 700-ticker, 20-year simulated datalog compacted into a dataset version.

Uses the datalog of benchmarks/workload.py's store in benchmarks/.cache/ (written there on first
use, shared with benchmarks/engine.py), builds it from scratch into a temporary folder, and prints the time and the peak memory.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workload  # noqa: E402  (benchmarks/workload.py, next to this file)

from equity_backtest.data import datasets  # noqa: E402
from equity_backtest.data.datalog import list_logs  # noqa: E402


def main() -> None:
    datalog = Path(workload.store(700, 500, 20).datalog_dir)
    logs = list_logs(datalog)
    size = sum(p.stat().st_size for _, p in logs) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = datasets.build(datalog, Path(tmp) / "datasets")
        seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"datalog: {len(logs)} logfiles, {size:.0f} MB; rows: {result.rows}")
    print(
        f"build from scratch (quality report included): {seconds:.1f} s, peak memory {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
