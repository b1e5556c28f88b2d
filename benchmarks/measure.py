"""A script timed in its own process, with that process's own peak memory.

A child's `getrusage` maximum is no use here: Linux carries the largest resident size over
`exec`, so a child started by a benchmark that holds gigabytes reports the benchmark's size (a
child started beside a 3 GB array reports 3 GB while it uses 11 MB). The child reads its own
high-water mark (VmHWM, Linux) instead, and prints it last.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# runs a script in this interpreter, then prints its peak resident memory in kB last on stderr
_WRAPPER = (
    "import runpy, sys\n"
    "script = sys.argv[1]; sys.argv = sys.argv[1:]\n"
    "try:\n    runpy.run_path(script, run_name='__main__')\n"
    "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "print(hwm[0], file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_script(script: Path, *args: str, cwd: Path) -> tuple[float, float]:
    """Run `python script args...` in `cwd`; (seconds, peak MB of that process). Its output is
    dropped; a failure raises CalledProcessError with its stderr."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(script), *args],
        cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return time.perf_counter() - t, int(proc.stderr.strip().splitlines()[-1]) / 1024


def own_peak_mb() -> float:
    """This process's peak resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (these benchmarks measure memory on Linux)")
