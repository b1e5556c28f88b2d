#!/usr/bin/env python3
"""Heap benchmark: datalog.quote on a million prices, with glibc's default heap settings and
inside heap.kept() (what 01's simulated vendor uses), in milliseconds per million values.

The default comes first: leaving kept() sets glibc's fixed defaults, which end its adaptive
mmap threshold for the rest of the process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from equity_backtest.data.datalog import quote  # noqa: E402
from equity_backtest.infra import heap  # noqa: E402


def per_million(values: np.ndarray, repeats: int = 20) -> float:
    quote(values)  # (warm)
    start = time.perf_counter()
    for _ in range(repeats):
        quote(values)
    return (time.perf_counter() - start) / repeats / len(values) * 1e9


def main() -> None:
    values = np.exp(np.random.default_rng(0).normal(3.0, 2.0, 1 << 20))
    default = per_million(values)
    with heap.kept():
        kept = per_million(values)
    print(f"quote, default heap: {default:6.1f} ms per million values")
    print(f"quote, heap.kept():  {kept:6.1f} ms per million values ({default / kept:.1f}x)")


if __name__ == "__main__":
    main()
