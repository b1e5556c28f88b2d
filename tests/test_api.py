"""A1: the Python API over the same archive, and the example notebook executed top to bottom."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from equity_backtest import api
from equity_backtest.errors import BadInputError
from tests.conftest import REPO, params_for

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, small_store) -> Path:
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    return tmp_path


def test_a_backtest_from_python_reads_like_one_from_03(store, monkeypatch):
    monkeypatch.chdir(store)
    params = params_for(store, rebalance="quarterly")
    run = api.backtest(params, algorithm=REPO / "strategies" / "equal_weight.py")
    assert run.status == "completed" and (run.folder / "run.json").is_file()
    assert isinstance(run.returns, pd.Series) and len(run.returns) == len(run.runtime)
    assert run.metrics["final_value"] == pytest.approx(run.runtime["value"].iloc[-1])
    assert run.tearsheet().is_file()
    returns, positions, transactions = run.pyfolio()
    assert str(returns.index.tz) == "UTC" and "cash" in positions.columns and len(transactions)
    again = api.load(run.folder)
    assert again.metrics == run.metrics


def test_a_function_is_run_and_recorded_in_the_archive(store, monkeypatch):
    monkeypatch.chdir(store)

    def first_three(view, params):
        chosen = view.universe[:3]
        return pd.Series(1 / 3, index=chosen)

    run = api.backtest(params_for(store), algorithm=first_three, rebalance="yearly")
    recorded = list(run.folder.glob("first_three-*.py"))
    assert recorded and "def first_three" in recorded[0].read_text()
    held = set(run.positions["ticker"].astype(str))
    assert 0 < len(held) <= 6


def test_overrides_are_checked_like_set(store):
    with pytest.raises(BadInputError, match="parameter 'spread_bps'"):
        api.backtest(params_for(store), spread_bps=float("nan"))
    with pytest.raises(
        BadInputError, match="unknown parameter 'rebalnce' .did you mean 'rebalance'"
    ):
        api.backtest(params_for(store), rebalnce="yearly")
    with pytest.raises(BadInputError, match="did you mean 'rebalance'"):
        api.parameters(store / "nothing.py", rebalnce="monthly")  # (the typo is found first)
    with pytest.raises(BadInputError, match="parameter 'sim_n_tickers'"):
        api.backtest(params_for(store), sim_n_tickers="40.7")  # converted as --set would
    with pytest.raises(BadInputError, match="not a finished run archive"):
        api.load(store / "nope")


def test_a_sweep_from_python(store, monkeypatch):
    monkeypatch.chdir(store)
    params = params_for(store)
    from tests.conftest import write_parameters_file

    write_parameters_file(store / "parameters.py")
    shutil.copy(REPO / "algorithm.py", store / "algorithm.py")
    sweep = api.trials(params, grid={"rebalance": ["quarterly", "yearly"]}, jobs=2)
    assert list(sweep.table["status"]) == ["completed", "completed"]
    assert set(sweep.runs) == set(sweep.table["trial"])


def test_the_example_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    # a user's Jupyter: its own inline backend (CI sets MPLBACKEND=Agg for the scripts)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(REPO / "examples" / "study.ipynb", as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{env_path}" if env_path else str(REPO)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "sharpe_ratio" in outputs and "completed" in outputs
    assert (tmp_path / "notebook_study" / "results").is_dir()
    shown = [set(o.get("data", {})) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in kinds for kinds in shown) >= 2  # run.plot() inline
    assert any("text/html" in kinds for kinds in shown)  # a run's summary


def test_a_run_draws_each_chart_as_a_figure_and_summarises_itself(store):
    import matplotlib.figure

    run = api.backtest(params_for(store))
    for chart in api.Run.CHARTS:
        assert isinstance(run.plot(chart), matplotlib.figure.Figure), chart
    assert isinstance(run.plot_equity(), matplotlib.figure.Figure)
    with pytest.raises(BadInputError, match="choose one of equity"):
        run.plot("pie")
    summary = run._repr_html_()
    assert run.folder.name in summary and "annual return, TOP20 index" in summary
