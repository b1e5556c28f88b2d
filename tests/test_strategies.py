"""S1: the bundled example strategies satisfy the compute_weights contract and do what they say."""

import numpy as np
import pandas as pd
import pytest

from equity_backtest.engine.loop import run_backtest
from equity_backtest.panel import load_panel
from equity_backtest.strategy_loader import load_compute_weights
from tests.conftest import REPO, params_for


@pytest.fixture(scope="module")
def panel_and_params(small_store):
    params = params_for(small_store, commission_min=0.0, no_trade_band=0.0, cash_buffer=0.0)
    return load_panel(params), params


@pytest.mark.parametrize("name", ["equal_weight", "book_to_market"])
def test_bundled_strategy_runs(panel_and_params, name):
    panel, params = panel_and_params
    result = run_backtest(panel, params, load_compute_weights(REPO / "strategies" / f"{name}.py"))
    assert result.status == "completed" and len(result.trades) > 0
    w = result.target_weights.groupby("date")["weight"]
    assert (w.sum() <= 1 + 1e-12).all()


def test_equal_weights_return_to_equal_at_each_rebalance(panel_and_params):
    panel, params = panel_and_params
    params = params.replace(fractional_shares=True, volume_cap=1.0)
    result = run_backtest(
        panel, params, load_compute_weights(REPO / "strategies" / "equal_weight.py")
    )
    pos = result.positions
    rebal = result.runtime_log.loc[result.runtime_log["rebalance"], "date"]
    # the day after a rebalance decision the fills land; weights are then (nearly) equal
    fill_days = result.runtime_log["date"].shift(-1)[result.runtime_log["rebalance"]].dropna()
    spreads = [
        pos[pos["date"] == d]["weight"].agg(lambda w: w.max() - w.min()) for d in fill_days[1:]
    ]
    assert len(rebal) > 20 and max(spreads) < 0.01


def test_book_to_market_picks_the_cheapest_members(panel_and_params):
    from equity_backtest.view import View

    panel, params = panel_and_params
    t = panel.day(pd.Timestamp("2012-06-01"))
    view = View(panel, t, np.zeros(len(panel.tickers)), 1e6, 60)
    w = load_compute_weights(REPO / "strategies" / "book_to_market.py")(view, params)
    f = view.fundamentals(["total_equity"], tickers=view.universe)["total_equity"]
    btm = (f / view.market(view.universe)["market_cap"]).dropna().sort_values()
    assert set(w.index) == set(btm.index[-20:]) and w.sum() == pytest.approx(1.0)
