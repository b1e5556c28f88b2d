"""O2 at random moments: each stage is killed with SIGKILL after a seeded random delay (not at a
named kill point), then rerun, and what it leaves is compared with an uninterrupted run: 01's
datalog, 02's tables, 03's archive (with checkpoints on), a sweep's parent and its trials folder,
and 04's evaluation. Nothing half-done is ever visible under a finished name, and leftovers of
killed processes are cleared by the next run of the stage."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from equity_backtest.data import datasets

from .conftest import REPO, run_script, tree_digest, write_parameters_file

pytestmark = pytest.mark.slow
DELAYS = random.Random(20261130)


def _project(root: Path, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    write_parameters_file(root / "parameters.py", **kw)
    return root


def _kill_after(root: Path, delay: float, *args: str) -> int:
    """Start a numbered script (args[0]) in its own process group; SIGKILL the group after
    `delay` seconds unless it finished. Returns its exit code (-9 when killed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / args[0]), *args[1:], "--quiet"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and any trial processes it started
        proc.wait()
    return proc.returncode


def _moments(n: int) -> list[float]:
    """Seeded random moments, as fractions of how long the uninterrupted run took (measured by
    each reference fixture), so every kill lands inside the work, not after it."""
    return [round(DELAYS.uniform(0.05, 0.95), 3) for _ in range(n)]


def _timed(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = run_script(root, str(REPO / args[0]), *args[1:])
    return proc, time.monotonic() - started


def _visible(folder: Path) -> dict[str, str]:
    return {
        k: v
        for k, v in tree_digest(folder).items()
        if not any(p.startswith(".") for p in Path(k).parts)
    }


def _hidden(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob(".*")]


def _archive(run_dir: Path) -> dict:
    files = _visible(run_dir)
    for name in [k for k in files if k.endswith("run.log")]:
        files.pop(name)
    for name in [k for k in files if k.endswith("run.json")]:
        info = json.loads((run_dir / name).read_text())
        info.pop("created_utc", None)
        files[name] = json.dumps(info, sort_keys=True)
    return files


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_store) -> dict:
    root = _project(tmp_path_factory.mktemp("ref01"))
    _, t01 = _timed(root, "01_query_vendor.py")
    _, t02 = _timed(root, "02_build_datasets.py")
    return {"datalog": tree_digest(small_store / "datalog"), "store": small_store, "t": (t01, t02)}


@pytest.mark.parametrize("moment", _moments(3))
def test_01_and_02_killed_at_a_random_moment(tmp_path, reference, moment):
    root = _project(tmp_path)
    t01, t02 = reference["t"]
    _kill_after(root, moment * t01, "01_query_vendor.py")
    assert run_script(root, str(REPO / "01_query_vendor.py")).returncode == 0
    assert _visible(root / "datalog") == reference["datalog"]
    _kill_after(root, moment * t02, "02_build_datasets.py")
    current = datasets.current_version(root / "datasets")
    if current is not None:  # CURRENT names a complete version or none
        datasets.load_tables(root / "datasets", current)
    assert run_script(root, str(REPO / "02_build_datasets.py")).returncode == 0
    version = datasets.current_version(root / "datasets")
    ref_version = datasets.current_version(reference["store"] / "datasets")
    assert (
        datasets.read_manifest(root / "datasets", version)["tables"]
        == datasets.read_manifest(reference["store"] / "datasets", ref_version)["tables"]
    )
    leftovers = [p.name for p in (root / "datasets").iterdir() if ".tmp-" in p.name]
    assert leftovers == []  # what the killed build left is cleared by the next one


RUN = "results/the_run"


@pytest.fixture(scope="module")
def run_reference(tmp_path_factory, small_store) -> dict:
    root = _project(tmp_path_factory.mktemp("ref"), checkpoint_days=40, checkpoint_after_s=0)
    shutil.copytree(small_store / "datasets", root / "datasets")
    _, t03 = _timed(root, "03_trade.py", "--run-dir", RUN)
    _, t04 = _timed(root, "04_evaluate.py", RUN)
    return {"archive": _archive(root / RUN), "t": (t03, t04)}


@pytest.mark.parametrize("moment", _moments(4))
def test_03_with_checkpoints_and_04_killed_at_a_random_moment(
    tmp_path, small_store, run_reference, moment
):
    root = _project(tmp_path, checkpoint_days=40, checkpoint_after_s=0)
    shutil.copytree(small_store / "datasets", root / "datasets")
    t03, t04 = run_reference["t"]
    _kill_after(root, moment * t03, "03_trade.py", "--run-dir", RUN)
    if not (root / RUN).exists():  # killed before the rename: only the hidden folder is there
        run_script(root, str(REPO / "03_trade.py"), "--run-dir", RUN)
    assert _hidden(root / RUN) == []  # no half-written checkpoint or owner mark inside
    _kill_after(root, moment * t04, "04_evaluate.py", RUN)
    metrics = root / RUN / "metrics.json"
    if metrics.exists():  # evaluated means completely evaluated
        assert (root / RUN / "tearsheet.html").is_file() and (root / RUN / "returns.csv").is_file()
    run_script(root, str(REPO / "04_evaluate.py"), RUN)
    assert _archive(root / RUN) == run_reference["archive"]


GRID = ("--grid", "rebalance=monthly,quarterly,yearly", "--grid", "commission_rate=0.0005,0.002")


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory, small_store) -> dict:
    root = _project(tmp_path_factory.mktemp("sweep"))
    shutil.copytree(small_store / "datasets", root / "datasets")
    proc, took = _timed(root, "03_trade.py", *GRID, "--jobs", "2")
    trials = pd.read_csv(root / proc.stdout.strip() / "trials.csv")[["trial", "final_value"]]
    return {"trials": trials, "t": took}


@pytest.mark.parametrize("moment", _moments(3))
def test_a_sweeps_parent_killed_stays_hidden_and_a_rerun_finishes_it(
    tmp_path, small_store, sweep_reference, moment
):
    root = _project(tmp_path)
    shutil.copytree(small_store / "datasets", root / "datasets")
    code = _kill_after(root, moment * sweep_reference["t"], "03_trade.py", *GRID, "--jobs", "2")
    visible = [p for p in (root / "results").iterdir() if not p.name.startswith(".")]
    if code != 0:
        # no partial set under a visible name: a kill that lands after the finished set was
        # renamed into place (the run was quicker than the reference) leaves it whole
        for finished in visible:
            listed = pd.read_csv(finished / "trials.csv")
            assert len(listed) == len(sweep_reference["trials"]), finished.name
        hidden = [p for p in (root / "results").iterdir() if p.name.endswith(".sweep")]
        if hidden:  # 04 refuses an incomplete set
            proc = run_script(root, str(REPO / "04_evaluate.py"), str(hidden[0]), check=False)
            assert proc.returncode == 2 and "not a finished trials folder" in proc.stderr
    time.sleep(0.1)
    folder = run_script(root, str(REPO / "03_trade.py"), *GRID, "--jobs", "2").stdout.strip()
    got = pd.read_csv(root / folder / "trials.csv")[["trial", "final_value"]]
    pd.testing.assert_frame_equal(got, sweep_reference["trials"])
    assert [p.name for p in (root / "results").iterdir() if p.name.endswith(".sweep")] == []
