#!/usr/bin/env python3
"""Tear-sheet benchmark: time 04 on a 20-year, 700-ticker run (from benchmarks/engine.py's store).

python benchmarks/engine.py     # once, builds the store and some runs
python benchmarks/tearsheet.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from equity_backtest.evaluation.tearsheet import evaluate  # noqa: E402


def main() -> None:
    runs = sorted((REPO / "benchmarks" / ".cache").glob("*/results/bench_*"))
    runs = [r for r in runs if (r / "run.json").is_file()]
    if not runs:
        sys.exit("no benchmark run found: run benchmarks/engine.py first")
    run = runs[-1]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        m = evaluate(run)
        times.append(time.perf_counter() - t)
    print(
        f"run: {run.parent.parent.name}, {m['period']['days']} days, {m['trading']['number_of_trades']} trades"
    )
    print(
        f"04 evaluation (metrics, tables, plots, contest, tear sheet): best {min(times):.2f} s, "
        f"median {statistics.median(times):.2f} s"
    )


if __name__ == "__main__":
    main()
