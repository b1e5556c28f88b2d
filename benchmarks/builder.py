#!/usr/bin/env python3
"""Builder benchmark: a 700-ticker, 20-year simulated datalog compacted into a dataset version.

Uses the datalog that benchmarks/engine.py keeps in benchmarks/.cache/ (written there on first
use), builds it from scratch into a temporary folder, and prints the time and the peak memory.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from equity_backtest import datasets  # noqa: E402
from equity_backtest.datalog import list_logs  # noqa: E402
from equity_backtest.vendors import simulated  # noqa: E402


def main() -> None:
    datalog = REPO / "benchmarks" / ".cache" / "700_500_20" / "datalog"
    if not datalog.is_dir():
        settings = simulated.SimulationSettings(
            700, 500, dt.date(2004, 1, 1), dt.date(2024, 12, 31), 1
        )
        simulated.query(settings, datalog)
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
