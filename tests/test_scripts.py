"""End to end: the four numbered scripts as subprocesses in a project folder, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from equity_backtest.errors import EXIT_BAD_INPUT
from equity_backtest.evaluation.tearsheet_html import fmt
from tests.conftest import REPO, run_script, tree_digest, write_parameters_file

pytestmark = pytest.mark.slow
SCRIPTS = ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py")


class _Cells(HTMLParser):
    """Collects the text of every element carrying a data-key attribute, in page order."""

    def __init__(self):
        super().__init__()
        self.cells: list[tuple[str, str]] = []
        self._key = None

    def handle_starttag(self, tag, attrs):
        self._key = dict(attrs).get("data-key")

    def handle_data(self, data):
        if self._key is not None:
            self.cells.append((self._key, data))
            self._key = None


def test_main_job_from_an_empty_folder(tmp_path):
    for name in (*SCRIPTS, "algorithm.py"):
        shutil.copy(REPO / name, tmp_path / name)
    write_parameters_file(tmp_path / "parameters.py")
    run_script(tmp_path, "01_query_vendor.py")
    run_script(tmp_path, "02_build_datasets.py")
    run_dir = Path(tmp_path / run_script(tmp_path, "03_trade.py").stdout.strip())
    sheet = Path(tmp_path / run_script(tmp_path, "04_evaluate.py").stdout.strip())
    assert sheet == run_dir / "tearsheet.html" and sheet.is_file()
    assert re.fullmatch(r"\d{8}T\d{6}Z__simulated__TOP20__algorithm", run_dir.name)
    for name in (
        "runtime_log.csv",
        "trades.csv",
        "cash_ledger.csv",
        "positions.feather",
        "benchmark.csv",
        "parameters.py",
        "parameters.json",
        "algorithm.py",
        "dataset.json",
        "versions.json",
        "run.json",
        "run.log",
        "metrics.json",
        "returns.csv",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["relative"]["correlation"] > 0.95  # cap weights track the cap-weighted index
    assert metrics["trading"]["number_of_trades"] > 0

    # every number on the page is the number in metrics.json
    page = sheet.read_text()
    assert (
        "<script" not in page
        and 'src="http' not in page
        and page.count("data:image/png;base64,") == 10  # every figure of figures_for
    )
    parser = _Cells()
    parser.feed(page)
    assert len(parser.cells) > 100
    for key, text in parser.cells:
        value = metrics
        for part in key.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        assert text == fmt(key, value), (key, text, value)
    sections = {key.split(".")[0] for key, _ in parser.cells}
    assert {
        "portfolio",
        "benchmark",
        "relative",
        "trading",
        "round_trips",
        "drawdowns",
        "monthly_returns",
        "yearly_returns",
    } <= sections
    for name in (
        "drawdowns.csv",
        "monthly_returns.csv",
        "rolling.csv",
        "round_trips.csv",
        "pyfolio_returns.csv",
        "pyfolio_positions.feather",
        "pyfolio_transactions.csv",
    ):
        assert (run_dir / name).is_file(), name


def test_two_runs_give_identical_archives_apart_from_timestamps(project):
    a = project / "results" / "a"
    b = project / "results" / "b"
    run_script(project, "03_trade.py", "--run-dir", str(a), "--quiet")
    run_script(project, "03_trade.py", "--run-dir", str(b), "--quiet")
    da, db = tree_digest(a), tree_digest(b)
    for d in (da, db):
        d.pop("run.log")
        d.pop("run.json")
    assert da == db and len(da) >= 12
    ja, jb = (json.loads((x / "run.json").read_text()) for x in (a, b))
    ja.pop("created_utc")
    jb.pop("created_utc")
    assert ja == jb


def test_corrupted_logfile_exit_code_and_message_and_datalog_untouched(project):
    shutil.rmtree(project / "datasets")
    victim = sorted((project / "datalog").glob("*ticker_fundamental_data*"))[3]
    lines = victim.read_text().splitlines()
    fields = lines[2].split(",")
    fields[4] = "n/a?"
    lines[2] = ",".join(fields)
    victim.write_text("\n".join(lines) + "\n")
    before = tree_digest(project / "datalog")
    proc = run_script(project, "02_build_datasets.py", check=False)
    assert proc.returncode == EXIT_BAD_INPUT
    assert (
        victim.name in proc.stderr
        and "row 3" in proc.stderr
        and "'n/a?' is not a number" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert tree_digest(project / "datalog") == before
    assert not (project / "datasets" / "CURRENT").exists()
    ok = run_script(project, "02_build_datasets.py", "--skip-bad-logs")
    assert "skipped bad logfile" in ok.stderr and tree_digest(project / "datalog") == before


@pytest.mark.parametrize(
    "body,message",
    [
        ("return pd.Series(float('nan'), index=view.universe)", "must be finite"),
        (
            "return pd.Series(-1.0 / len(view.universe), index=view.universe)",
            "set allow_short = True",
        ),
        (
            "return pd.Series(2.0 / len(view.universe), index=view.universe)",
            "sum to 2, above the allowed leverage",
        ),
        ("return pd.Series({'NOT_A_TICKER': 0.5})", "'NOT_A_TICKER', which is not in the universe"),
        ("return 1 / 0", "compute_weights raised ZeroDivisionError"),
        ("import sys; sys.exit(0)", "compute_weights called sys.exit(0)"),
        ("return {view.universe[0]: 'abc'}", "returned weight 'abc' for"),
    ],
)
def test_bad_weights_stop_the_run_with_a_named_message(project, body, message):
    (project / "bad_algo.py").write_text(
        f"import pandas as pd\n\n\ndef compute_weights(view, params):\n    {body}\n"
    )
    proc = run_script(project, "03_trade.py", "--algorithm", "bad_algo.py", check=False)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    assert (
        message in proc.stderr and "bad_algo.py" in proc.stderr and "Traceback" not in proc.stderr
    )
    # no run folder, nothing half-written: only the failed run's log, where the message says
    left = list((project / "results").iterdir())
    assert [p.suffixes[-2:] for p in left] == [[".failed", ".log"]]
    assert str(left[0].name) in proc.stderr
    if "raised" in message:
        assert "Traceback" in left[0].read_text()  # the full traceback is kept in the log


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(project, script):
    proc = run_script(project, script, "--help")
    assert "--parameters" in proc.stdout and "--quiet" in proc.stdout


def test_flags_override_parameters_and_missing_inputs_are_clear(project):
    out = project / "results" / "window"
    run_script(
        project,
        "03_trade.py",
        "--start",
        "2012-01-01",
        "--end",
        "2012-06-30",
        "--run-dir",
        str(out),
        "--set",
        "rebalance=quarterly",
    )
    run = json.loads((out / "run.json").read_text())
    # (2 January 2012 was the New Year holiday on the NYSE, whose calendar the market follows)
    assert run["start"] == "2012-01-03" and run["end"] == "2012-06-29"
    assert json.loads((out / "parameters.json").read_text())["rebalance"] == "quarterly"
    proc = run_script(project, "04_evaluate.py", str(project / "results" / "nope"), check=False)
    assert proc.returncode == EXIT_BAD_INPUT and "not a finished run archive" in proc.stderr
    proc = run_script(project, "03_trade.py", "--algorithm", "missing.py", check=False)
    assert proc.returncode == EXIT_BAD_INPUT and "missing.py not found" in proc.stderr


def _archive_digest(folder: Path) -> dict[str, str]:
    """Digest of an archive without what legitimately differs between runs (log, creation time)."""
    digest = tree_digest(folder)
    digest.pop("run.log")
    info = json.loads((folder / "run.json").read_text())
    info.pop("created_utc")
    digest["run.json"] = json.dumps(info, sort_keys=True)
    return digest


def test_trials_in_parallel_equal_each_run_alone_whatever_the_order(project):
    shutil.copy(REPO / "strategies" / "equal_weight.py", project / "equal_weight.py")
    args = [
        "--algorithm",
        "algorithm.py",
        "--algorithm",
        "equal_weight.py",
        "--grid",
        "rebalance=monthly,quarterly",
        "--quiet",
    ]
    parallel = project / "results" / "parallel"
    serial = project / "results" / "serial"
    run_script(project, "03_trade.py", *args, "--jobs", "2", "--run-dir", str(parallel))
    run_script(project, "03_trade.py", *args, "--jobs", "1", "--run-dir", str(serial))
    table = pd.read_csv(parallel / "trials.csv")
    assert len(table) == 4 and (table["status"] == "completed").all()
    assert table["set_seed"].nunique() == 4  # each trial its own seed
    for name in table["trial"]:
        assert _archive_digest(parallel / name) == _archive_digest(serial / name)
    # the recorded command reproduces a trial on its own
    row = table.iloc[3]
    alone = project / "results" / "alone"
    cmd = shlex.split(row["command"])
    cmd[cmd.index("--run-dir") + 1] = str(alone)
    subprocess.run(cmd, cwd=project, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert _archive_digest(alone) == _archive_digest(parallel / row["trial"])
    # 04 over the trials folder: a tear sheet per trial and the overfitting analysis of the set
    run_script(project, "04_evaluate.py", str(parallel), "--blocks", "8")
    result = json.loads((parallel / "overfitting.json").read_text())
    assert 0 <= result["pbo"] <= 1 and result["splits"] == 70 and len(result["trials"]) == 4
    assert (parallel / "overfitting.html").is_file() and (parallel / "trials_summary.csv").is_file()
    assert all((parallel / name / "tearsheet.html").is_file() for name in table["trial"])
    params = json.loads((alone / "parameters.json").read_text())
    assert params["rebalance"] == "quarterly" and params["seed"] == int(row["set_seed"])


def test_starting_holdings(project):
    members = pd.read_csv(sorted((project / "datalog").glob("*constituent_list*"))[12])["ticker"][
        :2
    ].tolist()
    (project / "holdings.csv").write_text(f"ticker,shares\n{members[0]},100\n{members[1]},50.5\n")
    (project / "hold.py").write_text("def compute_weights(view, params):\n    return None\n")
    out = project / "results" / "held"
    run_script(
        project,
        "03_trade.py",
        "--algorithm",
        "hold.py",
        "--set",
        "starting_holdings=holdings.csv",
        "--start",
        "2012-01-01",
        "--run-dir",
        str(out),
    )
    pos = pd.read_feather(out / "positions.feather")
    first = pos[pos["date"] == pos["date"].min()].set_index("ticker")["shares"]
    assert first.to_dict() == {members[0]: 100.0, members[1]: 50.5}
    info = json.loads((out / "run.json").read_text())
    runtime = pd.read_csv(out / "runtime_log.csv")
    assert info["starting_value"] > 1_000_000 and runtime["orders"].sum() == 0
    assert (out / "starting_holdings.csv").is_file()
    for text, message in (
        ("NOPE,10", "'NOPE' has no price"),
        ("A,ten", "row 2, field 'shares': 'ten' is not a number"),
    ):
        (project / "bad.csv").write_text(f"ticker,shares\n{text}\n")
        proc = run_script(
            project,
            "03_trade.py",
            "--algorithm",
            "hold.py",
            "--set",
            "starting_holdings=bad.csv",
            check=False,
        )
        assert proc.returncode == EXIT_BAD_INPUT and message in proc.stderr


def test_a_3x3_sweep_gives_identical_results_in_local_processes_and_on_ray(project):
    grid = [
        "--grid",
        "rebalance=monthly,quarterly,yearly",
        "--grid",
        "commission_rate=0.0005,0.001,0.002",
    ]
    local, on_ray = project / "results" / "local", project / "results" / "ray"
    run_script(project, "03_trade.py", *grid, "--jobs", "2", "--run-dir", str(local), "--quiet")
    run_script(project, "03_trade.py", *grid, "--ray", "local", "--run-dir", str(on_ray), "--quiet")
    table = pd.read_csv(local / "trials.csv")
    assert len(table) == 9 and (table["status"] == "completed").all()
    assert pd.read_csv(on_ray / "trials.csv")["status"].eq("completed").all()
    for name in table["trial"]:
        assert _archive_digest(local / name) == _archive_digest(on_ray / name), name
    run_script(project, "04_evaluate.py", str(local), "--blocks", "8", "--quiet")
    summary = pd.read_csv(local / "trials_summary.csv")
    assert len(summary) == 9 and {
        "annual_return",
        "sharpe_ratio",
        "max_drawdown",
        "annual_turnover",
        "total_costs",
    } <= set(summary.columns)


def test_a_second_run_of_a_stage_exits_with_the_lock_code_and_a_stale_lock_is_cleared(project):
    from equity_backtest import cli
    from equity_backtest.errors import EXIT_LOCKED

    with cli.stage_lock(project / "datasets", "02_build_datasets"):
        proc = run_script(project, "02_build_datasets.py", check=False)
    assert proc.returncode == EXIT_LOCKED and f"pid {os.getpid()}" in proc.stderr
    assert not (project / "datasets" / ".lock-02_build_datasets").exists()  # released
    gone = subprocess.Popen(["true"])  # a process that has ended: its pid no longer runs
    gone.wait()
    (project / "datasets" / ".lock-02_build_datasets").write_text(
        json.dumps(
            {"pid": gone.pid, "host": __import__("socket").gethostname(), "started_utc": "then"}
        )
    )
    proc = run_script(project, "02_build_datasets.py")
    assert "clearing a stale 02_build_datasets lock" in proc.stderr
    assert not (project / "datasets" / ".lock-02_build_datasets").exists()
