"""Shared fixtures: a small simulated market (60 tickers, index of the top 20, 2010-2013) logged
and built once per session into real datalog/ and datasets/ folders, and helpers to run the
numbered scripts as subprocesses in a temporary project folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from equity_backtest.config import Parameters
from equity_backtest.data import datasets
from equity_backtest.data.vendors import simulated

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(
    seed=7,
    sim_n_tickers=60,
    sim_index_size=20,
    index="TOP20",
    sim_start=dt.date(2010, 1, 1),
    sim_end=dt.date(2013, 12, 31),
    start=dt.date(2011, 1, 1),
    end=dt.date(2013, 12, 31),
)


def small_settings(**kw) -> simulated.SimulationSettings:
    p = {**SMALL, **kw}
    return simulated.SimulationSettings(
        p["sim_n_tickers"], p["sim_index_size"], p["sim_start"], p["sim_end"], p["seed"]
    )


def params_for(root: Path, **kw) -> Parameters:
    """Parameters pointing at stores under `root`."""
    return Parameters(
        **{
            **SMALL,
            "datalog_dir": str(root / "datalog"),
            "datasets_dir": str(root / "datasets"),
            "results_dir": str(root / "results"),
            **kw,
        }
    )


def write_parameters_file(path: Path, **kw) -> Path:
    """A parameters.py for the small market (values as Python literals)."""
    values = {
        **SMALL,
        "datalog_dir": "datalog",
        "datasets_dir": "datasets",
        "results_dir": "results",
        **kw,
    }
    lines = ["import datetime"]
    for k, v in values.items():
        lines.append(
            f"{k} = datetime.date({v.year}, {v.month}, {v.day})"
            if isinstance(v, dt.date)
            else f"{k} = {v!r}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    """A test's LLM sessions end with it: their decision logs are closed before its fixtures
    (tmp_path) are torn down, not at exit into folders already removed."""
    session = sys.modules.get("equity_backtest.llm.session")
    if session is not None:
        session.close_sessions()


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> Path:
    """datalog/ and datasets/ of the small market, built once. Tests must not modify it: copy it."""
    root = tmp_path_factory.mktemp("small_store")
    simulated.query(small_settings(), root / "datalog")
    datasets.build(root / "datalog", root / "datasets")
    return root


@pytest.fixture
def project(tmp_path, small_store) -> Path:
    """A project folder with the four scripts, algorithm.py, a parameters.py and a copy of the
    small store: the layout a user has after forking the repository."""
    for name in (
        "01_query_vendor.py",
        "02_build_datasets.py",
        "03_trade.py",
        "04_evaluate.py",
        "algorithm.py",
    ):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(small_store / "datalog", tmp_path / "datalog")
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    write_parameters_file(tmp_path / "parameters.py")
    return tmp_path


def run_script(
    cwd: Path, script: str, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a numbered script (or `-m module`) as a user would, with the repository's package
    importable; `env` adds variables, a None value removes one."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    proc = subprocess.run(
        [sys.executable, script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {args} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
        )
    return proc


def free_port() -> int:
    """A TCP port free on loopback, for servers the tests start."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under a folder, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def panel_of(market: simulated.SimulatedMarket, **kw):
    """The engine's dense panel for a simulated market, built in memory (no files)."""
    from equity_backtest.data.panel import panel_from_tables

    s = market.settings
    params = Parameters(
        **{
            **SMALL,
            "seed": s.seed,
            "sim_n_tickers": s.n_tickers,
            "sim_index_size": s.index_size,
            "index": s.index_name,
            "sim_start": s.start,
            "sim_end": s.end,
            "start": s.start,
            "end": s.end,
            **kw,
        }
    )
    return panel_from_tables("in-memory", market.tables(), params)


@pytest.fixture(scope="session")
def default_market() -> simulated.SimulatedMarket:
    """The default-size simulated market (300 tickers, 2005-2024, seed 42), in memory."""
    return simulated.simulate(simulated.SimulationSettings(seed=42))
