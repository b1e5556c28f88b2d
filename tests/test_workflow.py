"""The researcher's workflow around the scripts: the archive is the whole contract (04 on a
copied run folder without datasets/), evaluation settings on 04, contest checks only when asked,
a tear sheet that fits the run, 04's default run, and files that follow the umask."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_script

pytestmark = pytest.mark.slow


def _run(project: Path, *args: str) -> Path:
    return project / run_script(project, "03_trade.py", *args).stdout.strip()


def test_04_evaluates_a_copied_run_folder_without_datasets_and_checks_the_contest(
    project, tmp_path
):
    run = _run(project, "--set", "contest_checks=true", "--set", "rebalance=quarterly")
    assert (run / "contest_inputs.feather").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("04_evaluate.py", "parameters.py"):
        shutil.copy(project / name, elsewhere / name)
    copied = elsewhere / "results" / run.name
    shutil.copytree(run, copied)
    proc = run_script(elsewhere, "04_evaluate.py", str(copied))
    assert not (elsewhere / "datasets").exists() and "Traceback" not in proc.stderr
    metrics = json.loads((copied / "metrics.json").read_text())
    checks = {c["constraint"]: c["result"] for c in metrics["contest"]["checks"]}
    assert metrics["contest"]["checked"] and checks["style_exposure"] != "NOT MEASURED"
    assert checks["tradable_universe"] != "NOT MEASURED"
    page = (copied / "tearsheet.html").read_text()
    assert "Contest checks (rules for market-neutral strategies)" in page


def test_a_long_only_run_is_not_graded_on_contest_rules_unless_asked(project):
    run = _run(project, "--set", "rebalance=quarterly")
    assert not (run / "contest_inputs.feather").exists()
    run_script(project, "04_evaluate.py", str(run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["contest"]["checked"] is False and metrics["contest"]["checks"] == []
    page = (run / "tearsheet.html").read_text()
    assert "Not checked: the contest" in page and "FAIL" not in page
    for figure in ("active return", "return distribution", "rolling"):
        assert f'alt="{figure}"' in page
    assert "Top holdings by mean weight" in page
    asked = run_script(project, "04_evaluate.py", str(run), "--contest")
    assert "not measured" in asked.stderr  # styles need inputs 03 saves when asked
    assert json.loads((run / "metrics.json").read_text())["contest"]["checked"] is True


def test_04_applies_evaluation_settings_and_refuses_backtest_settings(project):
    run = _run(project, "--set", "rebalance=quarterly")
    run_script(project, "04_evaluate.py", str(run))
    base = json.loads((run / "metrics.json").read_text())
    run_script(project, "04_evaluate.py", str(run), "--set", "risk_free_rate=0.10")
    high = json.loads((run / "metrics.json").read_text())
    assert high["risk_free_rate"] == 0.10
    assert high["portfolio"]["sharpe_ratio"] < base["portfolio"]["sharpe_ratio"]
    proc = run_script(project, "04_evaluate.py", str(run), "--set", "rebalance=daily", check=False)
    assert proc.returncode == 2 and "only its evaluation settings" in proc.stderr
    proc = run_script(project, "04_evaluate.py", str(run), "--blocks", "0", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_04_default_is_the_newest_finished_run_not_a_research_folder(project):
    run = _run(project, "--set", "rebalance=yearly")
    (project / "results" / "factor_momentum_12_1").mkdir()  # sorts after the timestamped runs
    (project / "results" / "factor_momentum_12_1" / "report.json").write_text("{}")
    out = run_script(project, "04_evaluate.py").stdout.strip()
    assert Path(out).parent.name == run.name
