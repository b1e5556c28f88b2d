#!/usr/bin/env python3
"""The panel build alone: a project folder's current dataset version into the engine's dense
arrays, without the panel cache, in this process. Prints the seconds, this process's peak
memory, and a SHA-256 of the arrays (every market field, the mark, total returns and the
volatility), so that two versions of the code can be compared on one dataset: same digest, same
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
    digest = hashlib.sha256()
    for name in sorted(panel.fields):
        digest.update(panel.fields[name].tobytes())
    digest.update(panel.mark.tobytes())
    digest.update(panel.total_return.tobytes())
    for days in sorted(panel._volatility):
        digest.update(panel._volatility[days].tobytes())
    print(
        f"panel {len(panel.dates)} days x {len(panel.tickers)} tickers: built in {seconds:.1f} s, "
        f"peak {own_peak_mb():.0f} MB, arrays' SHA-256 {digest.hexdigest()[:16]}"
    )


if __name__ == "__main__":
    main()
