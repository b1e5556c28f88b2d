"""O1, O4 and security basics: every stage's lock, hostile names, the Dockerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from equity_backtest import cli
from equity_backtest.errors import EXIT_LOCKED

from .conftest import REPO, run_script


@pytest.mark.parametrize(
    "script, folder, stage",
    [
        ("01_query_vendor.py", "datalog", "01_query_vendor"),
        ("02_build_datasets.py", "datasets", "02_build_datasets"),
    ],
)
def test_every_stage_refuses_to_overlap_with_itself(project, script, folder, stage):
    """Acceptance 2 for the stages that write a shared store: a second run exits with the lock
    code, naming the holder, and writes nothing."""
    before = sorted(p.name for p in (project / folder).iterdir())
    with cli.stage_lock(project / folder, stage):
        proc = run_script(project, script, check=False)
    assert proc.returncode == EXIT_LOCKED, proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (project / folder).iterdir()) == before


def test_04_refuses_to_evaluate_a_run_another_04_is_evaluating(project):
    run = project / run_script(project, "03_trade.py", "--set", "rebalance=yearly").stdout.strip()
    before = sorted(p.name for p in run.iterdir())
    with cli.stage_lock(run, "04_evaluate"):
        proc = run_script(project, "04_evaluate.py", check=False)
    assert proc.returncode == EXIT_LOCKED and f"pid {os.getpid()}" in proc.stderr
    assert sorted(p.name for p in run.iterdir()) == before


def test_an_empty_lock_file_left_by_a_crash_is_cleared(project):
    lock = project / "datasets" / ".lock-02_build_datasets"
    lock.write_text("")
    os.utime(lock, (1, 1))  # long ago
    proc = run_script(project, "02_build_datasets.py", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "clearing a stale 02_build_datasets lock" in proc.stderr and not lock.exists()


def test_two_backtests_run_at_once(project):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "03_trade.py", "--set", "rebalance=yearly", "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = {Path(out.strip()).name for out, _ in outs}
    assert len(folders) == 2 and all(
        (project / "results" / f / "run.json").is_file() for f in folders
    )


@pytest.mark.parametrize(
    "hostile", ["../../escape", "/etc/passwd", "..", "a/../../b", "~root", "\\x"]
)
def test_hostile_names_cannot_leave_their_store(tmp_path, hostile):
    """Names from users and vendors are made safe for paths: an index, source or algorithm name
    gives a run folder directly inside results/, and a datalog label stays a file in datalog/."""
    import pandas as pd

    from equity_backtest.config import Parameters
    from equity_backtest.data.datalog import LogName, parse_name, write_log
    from equity_backtest.run.runner import default_run_dir

    results = tmp_path / "results"
    params = Parameters(index=hostile, results_dir=str(results), algorithm=f"{hostile}.py")
    run = default_run_dir(params)
    assert run.parent == results and "/" not in run.name and not run.name.startswith(".")
    assert run.resolve().parent == results.resolve()
    frame = pd.DataFrame({"ticker": ["A"], "name": ["a"], "sector": ["s"]})
    path, _ = write_log(tmp_path / "datalog", LogName(1, "x", "metadata_array", hostile), frame)
    assert path.parent == tmp_path / "datalog" and path.resolve().parent == path.parent.resolve()
    assert parse_name(path.name).label == hostile  # the original is recoverable, as data


def _docker_install_lines() -> list[str]:
    text = (REPO / "Dockerfile").read_text()
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_dockerfile_installs_as_the_readme_says_with_pins():
    """O4: the image cannot be built here; its steps are checked instead. Each RUN line appears
    in the Docker section of docs/operations.md, pip installs with the constraints file, every
    COPY source exists, and the command runs the four scripts."""
    text = (REPO / "Dockerfile").read_text()
    readme = (REPO / "docs" / "operations.md").read_text()
    docker_section = readme[readme.index("## Docker") :]
    for line in _docker_install_lines():
        assert line in docker_section, line
        if "pip install" in line:
            assert "-c constraints.txt" in line and "--no-cache-dir" in line
    assert re.search(r"^FROM python:3\.11[\w.-]*$", text, re.M)
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    for script in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        assert script in text.split("CMD", 1)[1]
    pins = dict(
        line.split("==")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for package in ("numpy", "pandas", "pyarrow", "matplotlib", "tqdm", "python-dotenv"):
        assert package in pins, package


HADOLINT = shutil.which("hadolint") or shutil.which(
    "hadolint", path=str(Path(sys.executable).parent)
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed")
def test_dockerfile_passes_hadolint():
    proc = subprocess.run([HADOLINT, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_crontab_example_names_real_scripts_and_flags():
    text = (REPO / "ops" / "crontab.example").read_text()
    jobs = [line for line in text.splitlines() if line and line[0].isdigit()]
    assert len(jobs) >= 3
    for job in jobs:
        for script in re.findall(r"(\d\d_\w+\.py)", job):
            assert (REPO / script).is_file()
        assert "--quiet" in job


def test_every_stage_clears_the_half_written_files_a_killed_run_left(project):
    """A kill at the last moment of 01 or 04 (or of the investor tool) leaves `.<name>.<random>.tmp`
    files; the next run of the same stage removes them, and leaves everything else alone."""
    import time as _time

    from tests.conftest import run_script as run

    datalog = project / "datalog"
    stray_log = datalog / ".1700000000000000__simulated__ticker_market_data__AAA.csv.k3x9a1zq.tmp"
    stray_log.write_text("date,open\n2020-01")
    run(project, "01_query_vendor.py", "--quiet")
    assert not stray_log.exists()
    run(project, "02_build_datasets.py", "--quiet")
    run_dir = project / run(project, "03_trade.py", "--quiet").stdout.strip()
    stray_sheet = run_dir / ".tearsheet.html.q8w7e6r5.tmp"
    stray_sheet.write_text("<html>half")
    keep = run_dir / ".notes"
    keep.write_text("mine")
    run(project, "04_evaluate.py", str(run_dir), "--quiet")
    assert not stray_sheet.exists() and keep.exists()
    stray_orders = project / "results" / ".orders_quality_x.csv.a1b2c3d4.tmp"
    stray_orders.write_text("stock,")
    old = _time.time() - 3600
    os.utime(stray_orders, (old, old))
    run(project, "-m", "equity_backtest.investor", "--theme", "quality", "--stocks", "3",
        "--invest", "1000", "--quiet")  # fmt: skip
    assert not stray_orders.exists()


def test_quiet_prints_only_errors(project):
    """--quiet: nothing on the screen but errors and what the script hands on (a path); the
    warnings are in the log file."""
    from tests.conftest import run_script as run

    run(project, "02_build_datasets.py", "--quiet")
    proc = run(project, "03_trade.py", "--quiet", "--set", "start=2000-01-01")
    assert proc.stderr == "" and proc.stdout.strip().startswith("results")
