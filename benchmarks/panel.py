#!/usr/bin/env python3
"""The panel build alone: a project folder's current dataset version into the engine's dense
arrays, without the panel cache, in this process. Prints the seconds, this process's peak
memory, and a SHA-256 of everything the panel holds (dates, tickers, every market field, the
mark, total returns, the volatility, the corporate actions by day, membership, fundamentals and
metadata), so that two versions of the code can be compared on one dataset: same digest, same
panel.

    python benchmarks/panel.py FOLDER    (FOLDER: e.g. made by benchmarks/scale.py --keep FOLDER)

Run the old code with PYTHONPATH pointing at a worktree of it (`git worktree add /tmp/old REF`,
then `PYTHONPATH=/tmp/old python /tmp/old/benchmarks/panel.py FOLDER` where the old tree has
this script, or this script with PYTHONPATH=/tmp/old).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

if os.environ.get("PYTHONPATH") is None:  # (the repository's own code unless told otherwise)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import own_peak_mb  # noqa: E402

from equity_backtest.config import load_parameters  # noqa: E402
from equity_backtest.data.panel import load_panel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("folder", help="a project folder with parameters.py and its datasets")
    args = ap.parse_args()
    os.chdir(args.folder)
    params = load_parameters("parameters.py").replace(panel_cache=False)
    t = time.perf_counter()
    panel = load_panel(params)
    seconds = time.perf_counter() - t
    print(
        f"panel {len(panel.dates)} days x {len(panel.tickers)} tickers: built in {seconds:.1f} s, "
        f"peak {own_peak_mb():.0f} MB, SHA-256 {digest(panel)[:16]}"
    )


def digest(panel) -> str:
    """SHA-256 of every array of the panel, with its dtype and shape, in a fixed order."""
    sha = hashlib.sha256()

    def add(*arrays) -> None:
        for a in arrays:
            a = np.asarray(a)
            sha.update(f"{a.dtype}{a.shape}".encode())
            sha.update(a.tobytes() if a.dtype != object else "\x1f".join(map(str, a)).encode())

    add(panel.dates.asi8, panel.tickers, panel.mark, panel.total_return)
    add(*(panel.fields[name] for name in sorted(panel.fields)))
    add(*(panel._volatility[days] for days in sorted(panel._volatility)))
    for kind in ("splits", "dividends", "delistings"):
        by_day = getattr(panel.events, kind)
        add(list(by_day), *(a for day in by_day for a in by_day[day]))
    add(panel.list_dates.asi8, panel.membership, panel.list_of_day)
    for metric, series in panel.fundamentals.items():
        add([metric], series.ticker, series.period_end, series.public_day, series.value)
    add(panel.metadata.index, *(panel.metadata[c] for c in panel.metadata.columns))
    return sha.hexdigest()


if __name__ == "__main__":
    main()
