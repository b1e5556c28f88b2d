"""O2 reliability suite: each numbered script (and the LLM run) is killed with SIGKILL at many
points (before, during and after its writes; 03 mid-loop; the LLM run mid-batch), then rerun.

What is compared with an uninterrupted run:
  - 01: the datalog, file by file (names and bytes); after the kill, every logfile present is
    already complete and identical (a half-written file is never visible under a log's name);
  - 02: the dataset's tables (their SHA-256 in the manifest) and CURRENT; after the kill, CURRENT
    names a complete version or none;
  - 03: every file of the run archive except run.log, and run.json without its creation time;
    after the kill, no finished run folder exists; a kill after a checkpoint resumes from it;
  - the LLM run: the decision log's keys, each present exactly once.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from equity_backtest.data import datasets
from equity_backtest.data.datalog import list_logs

from .conftest import REPO, run_script, tree_digest, write_parameters_file

pytestmark = pytest.mark.slow
KILLED = -9


def script(root: Path, name: str, *args: str, kill: str | None = None, module: bool = False):
    target = ["-m", name] if module else [str(REPO / name)]
    return run_script(root, *target, *args, check=False, env={"EQUITY_BACKTEST_KILL_AT": kill})


def project(root: Path, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "algorithm.py", root / "algorithm.py")
    write_parameters_file(root / "parameters.py", **kw)
    return root


def visible_files(folder: Path) -> dict[str, str]:
    return {
        k: v
        for k, v in tree_digest(folder).items()
        if not any(p.startswith(".") for p in Path(k).parts)
    }


# --- 01 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_store) -> dict:
    return {"datalog": tree_digest(small_store / "datalog"), "store": small_store}


@pytest.mark.parametrize(
    "kill", ["write:1", "write:2", "write:3", "write:92", "write:301", "write:599"]
)
def test_01_killed_then_rerun_gives_the_same_datalog(tmp_path, reference, kill):
    root = project(tmp_path)
    killed = script(root, "01_query_vendor.py", kill=kill)
    assert killed.returncode == KILLED
    present = visible_files(root / "datalog")
    assert all(reference["datalog"].get(k) == v for k, v in present.items())  # only whole logs
    assert script(root, "01_query_vendor.py").returncode == 0
    assert visible_files(root / "datalog") == reference["datalog"]


# --- 02 -------------------------------------------------------------------------------------


def _tables(root: Path) -> dict:
    version = datasets.current_version(root / "datasets")
    return datasets.read_manifest(root / "datasets", version)["tables"]


@pytest.mark.parametrize("kill", ["write:1", "write:3", "write:5", "write:6", "write:7"])
def test_02_killed_then_rerun_gives_the_same_dataset(tmp_path, reference, kill):
    root = project(tmp_path)
    shutil.copytree(reference["store"] / "datalog", root / "datalog")
    killed = script(root, "02_build_datasets.py", kill=kill)
    assert killed.returncode == KILLED
    current = datasets.current_version(root / "datasets")
    if current is not None:  # CURRENT only ever names a complete version
        assert _tables(root) == _tables(reference["store"])
    assert script(root, "02_build_datasets.py").returncode == 0
    assert _tables(root) == _tables(reference["store"])
    assert len(list_logs(root / "datalog")) == len(reference["datalog"])  # the datalog untouched


# --- 03 -------------------------------------------------------------------------------------

RUN = "results/the_run"


def _archive(run_dir: Path) -> dict:
    files = visible_files(run_dir)
    files.pop("run.log")
    info = json.loads((run_dir / "run.json").read_text())
    info.pop("created_utc", None)
    files["run.json"] = json.dumps(info, sort_keys=True)
    return files


@pytest.fixture(scope="module")
def run_reference(tmp_path_factory, small_store) -> dict:
    root = project(tmp_path_factory.mktemp("run_ref"), checkpoint_days=100, checkpoint_after_s=0)
    shutil.copytree(small_store / "datasets", root / "datasets")
    assert script(root, "03_trade.py", "--run-dir", RUN).returncode == 0
    return _archive(root / RUN)


@pytest.mark.parametrize(
    "kill, resumes",
    [
        ("heartbeat:50", False),  # before the first checkpoint
        ("heartbeat:250", True),  # mid-loop, after checkpoints
        ("heartbeat:701", True),
        ("write:2", False),  # while the first checkpoint is half written
        ("write:14", True),  # writing the archive, after the last checkpoint
        ("write:40", True),
    ],
)
def test_03_killed_then_rerun_gives_the_same_archive(
    tmp_path, small_store, run_reference, kill, resumes
):
    root = project(tmp_path, checkpoint_days=100, checkpoint_after_s=0)
    shutil.copytree(small_store / "datasets", root / "datasets")
    killed = script(root, "03_trade.py", "--run-dir", RUN, kill=kill)
    assert killed.returncode == KILLED
    assert not (root / RUN).exists()  # only the hidden .partial folder: never read as complete
    rerun = script(root, "03_trade.py", "--run-dir", RUN)
    assert rerun.returncode == 0, rerun.stderr
    assert ("resuming from the checkpoint" in rerun.stderr) is resumes
    assert _archive(root / RUN) == run_reference
    assert not (root / RUN / "checkpoint.npz").exists()
    # nothing hidden either: no half-written checkpoint temp file, no owner mark
    assert [p.name for p in (root / RUN).iterdir() if p.name.startswith(".")] == []


def test_03_clears_what_killed_runs_left_and_keeps_what_can_resume(tmp_path, small_store):
    root = project(tmp_path, checkpoint_days=100, checkpoint_after_s=0)
    shutil.copytree(small_store / "datasets", root / "datasets")
    dead = root / "results" / ".20200101T000000Z__simulated__TOP20__algorithm.partial"
    dead.mkdir(parents=True)
    (dead / "runtime_log.csv").write_text("half")  # a killed run with nothing to resume
    owner = {"pid": 999999999, "host": socket.gethostname()}  # a process that is gone
    (dead / ".owner.json").write_text(json.dumps(owner))
    assert script(root, "03_trade.py", kill="heartbeat:300").returncode == KILLED  # a checkpoint
    resumable = [
        p for p in (root / "results").iterdir() if p.name.endswith(".partial") and p != dead
    ]
    assert script(root, "03_trade.py", "--set", "rebalance=yearly").returncode == 0
    assert not dead.exists()  # cleared by the next 03
    assert all(p.exists() for p in resumable)  # a checkpoint is kept for its rerun


def test_03_default_run_folder_is_found_again_by_its_inputs(tmp_path, small_store):
    root = project(tmp_path, checkpoint_days=100, checkpoint_after_s=0)
    shutil.copytree(small_store / "datasets", root / "datasets")
    assert script(root, "03_trade.py", kill="heartbeat:300").returncode == KILLED
    partial = [p.name for p in (root / "results").iterdir()]
    rerun = script(root, "03_trade.py")
    assert rerun.returncode == 0 and "resuming" in rerun.stderr
    assert [p.name for p in (root / "results").iterdir()] == [
        partial[0][1:].removesuffix(".partial")
    ]
    # other inputs never resume someone else's checkpoint
    assert script(root, "03_trade.py", kill="heartbeat:300").returncode == KILLED
    other = script(root, "03_trade.py", "--set", "rebalance=quarterly")
    assert other.returncode == 0 and "resuming" not in other.stderr


# --- the LLM run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("transformers")
    from equity_backtest.llm.tiny import build

    return build(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("kill", ["decision:1", "decision:7", "decision:30", "decision:45"])
def test_llm_run_killed_mid_batch_then_rerun_logs_every_key_once(tmp_path, small_store, tiny, kill):
    import datetime as dt

    from equity_backtest.llm import decision_log

    root = project(
        tmp_path,
        start=dt.date(2013, 1, 1),
        end=dt.date(2013, 3, 29),  # three monthly rebalances of 20 members: 60 prompts
        llm_model=str(tiny),
        llm_max_new_tokens=16,
        llm_batch_size=4,
    )
    shutil.copytree(small_store / "datasets", root / "datasets")
    killed = script(root, "equity_backtest.llm", kill=kill, module=True)
    assert killed.returncode == KILLED
    before = len(list(decision_log.read_records(root / "decisions")))
    done = script(root, "equity_backtest.llm", module=True)
    assert done.returncode == 0, done.stderr
    keys = [r["key"] for r in decision_log.read_records(root / "decisions")]
    assert len(keys) == len(set(keys)) > before
    again = script(root, "equity_backtest.llm", module=True)
    assert "0 asked" in again.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_killed_process_not_yet_collected_holds_no_lock(tmp_path):
    """A process killed with SIGKILL stays a zombie until its parent (or init) collects it, and a
    zombie still answers kill(pid, 0): its locks and owner marks must count as stale, or a rerun
    right after a kill is refused as 'another run is writing'."""
    import os
    import signal
    import time

    from equity_backtest.infra.locks import process_alive

    pid = os.fork()
    if pid == 0:  # the child waits to be killed
        time.sleep(60)
        os._exit(0)
    try:
        assert process_alive(pid)
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # until the kernel has made it a zombie
            if not process_alive(pid):
                break
            time.sleep(0.01)
        assert not process_alive(pid)  # dead, though not yet collected
        assert Path(f"/proc/{pid}").exists()
    finally:
        os.waitpid(pid, 0)
    assert process_alive(os.getpid())
