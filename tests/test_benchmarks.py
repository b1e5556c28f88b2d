"""The benchmarks' own measuring: a script's peak memory is its process's, not its parent's."""

import importlib.util

import numpy as np

from .conftest import REPO


def _measure():
    spec = importlib.util.spec_from_file_location("measure", REPO / "benchmarks" / "measure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_childs_peak_is_its_own_not_its_large_parents(tmp_path):
    """Linux carries the largest resident size over exec: a child started by a process holding
    800 MB reported 800 MB through getrusage. run_script reports what the child itself used."""
    measure = _measure()
    held = np.ones(100_000_000)  # 800 MB resident in this process
    script = tmp_path / "small.py"
    script.write_text("import numpy as np\nx = np.ones(12_500_000)  # 100 MB\n")
    seconds, peak = measure.run_script(script, cwd=tmp_path)
    assert seconds > 0 and 100 <= peak < 400, peak
    assert measure.own_peak_mb() >= held.nbytes / 2**20


def test_the_scale_benchmark_deletes_its_work_folder_unless_kept(tmp_path):
    """benchmarks/scale.py at a tiny size: it prints every stage and leaves nothing in the
    temporary folder it made (a CRSP-sized run writes about 9 GB); --keep keeps the folder, and
    --more-days times further incremental builds on it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "OMP_NUM_THREADS": "1"}
    (tmp_path / "tmp").mkdir()
    args = [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--tickers", "40",
            "--index-size", "10", "--years", "3"]  # fmt: skip
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loop:" in proc.stdout and "02 after one more day" in proc.stdout
    assert "written to the panel cache in" in proc.stdout  # (the build timed without it)
    assert not list((tmp_path / "tmp").iterdir())
    kept = tmp_path / "kept"
    proc = subprocess.run([*args, "--keep", str(kept)], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0 and (kept / "datalog").is_dir()
    # the panel build alone on the kept folder: its figures and the arrays' digest, the same
    # on a second run (what compares two versions of the code)
    panel = [sys.executable, str(REPO / "benchmarks" / "panel.py"), str(kept)]
    runs = [subprocess.run(panel, env=env, capture_output=True, text=True, timeout=600)
            for _ in range(2)]  # fmt: skip
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert "built in" in runs[0].stdout and "peak" in runs[0].stdout
    digests = [r.stdout.split("SHA-256 ")[1].strip() for r in runs]
    assert digests[0] == digests[1] and len(digests[0]) == 16
    # 02 after one more day alone, twice, on the kept folder: two more versions
    more = [*args, "--keep", str(kept), "--more-days", "2"]
    proc = subprocess.run(more, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("02 after one more day") == 2
    assert len(list((kept / "datasets").glob("v*"))) == 4


def test_the_limit_benchmark_s_bare_loop_ends_at_our_final_value():
    """benchmarks/limit.py at a small size: the bare per-day loop it times against ours does the
    same work, so it ends within 0.1% of our final value (it does not scale buys down to the cash
    left, as ours does; on the S&P-sized workload the two are equal to the cent)."""
    import os
    import re
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "limit.py"), "--tickers", "60",
         "--index-size", "20", "--years", "3", "--repeat", "1"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = re.search(r"ours: .*final value ([\d,.]+)", proc.stdout).group(1)
    bare = re.search(r"bare: .*final value ([\d,.]+)", proc.stdout).group(1)
    ours, bare = (float(x.replace(",", "")) for x in (ours, bare))
    assert abs(bare / ours - 1) < 1e-3 and "ratio ours / bare" in proc.stdout
