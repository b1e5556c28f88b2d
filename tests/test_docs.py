"""The docs' commands as written (A1+, D12+): every script and module a fenced command in the
README or docs/ runs exists and takes the flags it is given, and the first-contact examples run
in a fresh folder and print the figures the docs quote."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_script

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# commands that need what CI has not (a terminal, a WRDS account, a GPU, the peers' own venv)
ELSEWHERE = ("source=bloomberg", "source=wrds", "llm_model=Qwen", "/tmp/peersenv")


def fenced_commands(path: Path) -> list[str]:
    """The command lines of a document's ```bash blocks (comments cut, '&&' chains split)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.extend(part.strip() for part in line.split("&&"))
    return out


def _python_calls() -> dict[tuple[str, ...], set[str]]:
    """(script) or ("-m", module) -> the flags the docs give it."""
    calls: dict[tuple[str, ...], set[str]] = {}
    for doc in DOCS:
        for command in fenced_commands(doc):
            if any(word in command for word in ELSEWHERE):
                continue
            words = shlex.split(command.replace("[", "").replace("]", ""))
            if not words or not re.search(r"(^|/)python3?$", words[0]):
                continue
            target = tuple(words[1:3]) if words[1] == "-m" else (words[1],)
            if target[0] in ("-c",) or target == ("-m", "venv"):
                continue
            flags = {w.split("=")[0] for w in words if w.startswith("--")}
            calls.setdefault(target, set()).update(flags)
    return calls


def test_every_documented_command_names_a_script_and_flags_that_exist():
    calls = _python_calls()
    assert ("03_trade.py",) in calls and ("-m", "equity_backtest.investor") in calls
    for target, flags in sorted(calls.items()):
        proc = subprocess.run(
            [sys.executable, *target, "--help"], cwd=REPO, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, (target, proc.stderr[-500:])
        missing = sorted(f for f in flags if f not in proc.stdout)
        assert not missing, f"{' '.join(target)} --help lacks {missing} that the docs use"


def _project(tmp_path: Path) -> Path:
    """A fresh clone's working folder: the scripts, parameters.py, algorithm.py and the folders
    the docs' commands read."""
    for name in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py",
                 "parameters.py", "algorithm.py"):  # fmt: skip
        shutil.copy(REPO / name, tmp_path / name)
    for folder in ("mappings", "samples", "examples", "strategies"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def _run(folder: Path, command: str) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    assert words[0] == "python", command
    return run_script(folder, *words[1:])


@pytest.mark.slow
def test_coming_from_a_single_stock_tool_runs_as_written(tmp_path):
    doc = (REPO / "docs" / "coming_from.md").read_text()
    folder = _project(tmp_path)
    outputs = [_run(folder, c) for c in fenced_commands(REPO / "docs" / "coming_from.md")]
    final = re.search(r"`final value ([\d.]+)`", doc).group(1)
    mine, theirs = re.search(
        r"annual return of ([\d.]+)% against the stock's own\s+([\d.]+)%", doc
    ).groups()
    assert f"final value {final}" in outputs[2].stderr
    said = re.search(r"annual_return\s+portfolio\s+([\d.]+)%\s+DKYN\s+([\d.]+)%", outputs[3].stderr)
    assert said and said.groups() == (mine, theirs), outputs[3].stderr[-2000:]
    sheet = folder / outputs[3].stdout.strip()
    assert "Against the benchmark (DKYN)" in sheet.read_text()


@pytest.mark.slow
def test_the_investor_example_runs_as_written_on_the_default_market(tmp_path):
    folder = _project(tmp_path)
    run_script(folder, "01_query_vendor.py", "--quiet")
    run_script(folder, "02_build_datasets.py", "--quiet")
    (command,) = [c for c in fenced_commands(REPO / "docs" / "investor.md") if "--holdings" in c]
    proc = _run(folder, command)
    assert "orders written to" in proc.stderr and "value after" in proc.stdout
