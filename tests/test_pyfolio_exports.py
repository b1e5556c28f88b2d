"""V5 exports: pyfolio-reloaded's full tear sheet (round trips included) and quantstats' HTML
report run on a run's exports, read back with nothing but the run folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_store) -> Path:
    import shutil

    from tests.conftest import REPO, write_parameters_file

    root = tmp_path_factory.mktemp("pyfolio")
    for name in ("03_trade.py", "04_evaluate.py", "algorithm.py"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(small_store / "datasets", root / "datasets")
    write_parameters_file(root / "parameters.py", rebalance="monthly")
    run = root / run_script(root, "03_trade.py", "--quiet").stdout.strip()
    run_script(root, "04_evaluate.py", str(run), "--quiet")
    return run


def _load(run: Path):
    returns = pd.read_csv(run / "pyfolio_returns.csv", index_col=0, parse_dates=True)["returns"]
    positions = pd.read_feather(run / "pyfolio_positions.feather").set_index("date")
    transactions = pd.read_csv(run / "pyfolio_transactions.csv", index_col=0, parse_dates=True)
    return returns, positions, transactions


def test_exports_are_utc_and_transactions_net_out_through_splits(exported):
    returns, positions, transactions = _load(exported)
    assert str(returns.index.tz) == "UTC" and str(positions.index.tz) == "UTC"
    assert str(transactions.index.tz) == "UTC"
    trades = pd.read_csv(exported / "trades.csv")
    assert np.allclose(  # value is kept: amount x price is what was traded
        (transactions["amount"] * transactions["price"]).to_numpy(),
        (trades["shares"] * trades["price"]).to_numpy(),
    )
    held = pd.read_feather(exported / "positions.feather")
    last = held[held["date"] == held["date"].max()]
    last = last.set_index(last["ticker"].astype(str))["shares"]
    net = transactions.groupby("symbol")["amount"].sum()
    expected = last.reindex(net.index).fillna(0.0)
    assert np.allclose(net.to_numpy(), expected.to_numpy(), atol=1e-6)
    splits = pd.read_csv(exported / "trades.csv")["reason"]
    assert len(splits)  # the run traded


def test_pyfolio_full_tear_sheet_with_round_trips_runs_on_the_exports(exported):
    import matplotlib

    matplotlib.use("Agg")
    import pyfolio as pf

    returns, positions, transactions = _load(exported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf.create_full_tear_sheet(
            returns, positions=positions, transactions=transactions, round_trips=True
        )
        trips = pf.round_trips.extract_round_trips(
            transactions, portfolio_value=positions.sum(axis="columns") / (returns + 1)
        )
    assert len(trips) > 0


def test_quantstats_html_report_runs_on_the_exports(exported, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import quantstats as qs

    returns, _, _ = _load(exported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(returns.tz_convert(None), output=str(tmp_path / "qs.html"))
    assert (tmp_path / "qs.html").stat().st_size > 10_000


def test_a_split_between_a_buy_and_a_sale_nets_out_in_the_exported_transactions():
    """22 shares bought, a 4:1 split, 88 sold: exported as 88 bought and 88 sold."""
    from equity_backtest.evaluation.exports import transactions
    from equity_backtest.evaluation.returns import RunData

    days = pd.bdate_range("2020-01-01", periods=4)
    positions = pd.DataFrame(
        {"date": days[:3], "ticker": ["AAA"] * 3, "shares": [22.0, 88.0, 88.0]}
    )
    trades = pd.DataFrame(
        {
            "date": [days[0], days[3]],
            "ticker": ["AAA", "AAA"],
            "shares": [22.0, -88.0],
            "price": [100.0, 26.0],
        }
    )
    empty = pd.DataFrame()
    run = RunData(
        Path("."), pd.DataFrame({"date": days}), trades, positions, empty, empty, {}, {},
        pd.Series(0.0, index=days), pd.Series(0.0, index=days), 0.0,
    )  # fmt: skip
    txn = transactions(run)
    assert txn["amount"].tolist() == [88.0, -88.0]
    assert txn["price"].tolist() == [25.0, 26.0]
    assert txn["amount"].sum() == 0
