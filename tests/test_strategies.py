"""S1, S2: every bundled strategy honours the compute_weights contract and backtests end to end;
the planted premia show; the Magic Formula ranks match a hand computation."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data.panel import load_panel
from equity_backtest.engine.loop import run_backtest
from equity_backtest.engine.strategy_loader import load_compute_weights
from equity_backtest.engine.view import View
from equity_backtest.evaluation.metrics import annual_return
from equity_backtest.research import themes
from tests.conftest import REPO, SMALL, panel_of, params_for

# the ten themes; strategies/llm.py needs a model and is tested in test_llm.py
STRATEGIES = sorted(p.stem for p in (REPO / "strategies").glob("*.py") if p.stem != "llm")


@pytest.fixture(scope="module")
def panel_and_params(small_store):
    params = params_for(small_store, commission_min=0.0, no_trade_band=0.0, cash_buffer=0.0)
    return load_panel(params), params


def test_all_ten_themes_are_bundled():
    assert set(STRATEGIES) == {
        "equal_weight",
        "market_cap",
        "random_selection",
        "price_to_book",
        "magic_formula",
        "momentum_12_1",
        "residual_momentum",
        "low_volatility",
        "quality",
        "dividend_yield",
    }


@pytest.mark.parametrize("name", STRATEGIES)
def test_bundled_strategy_runs_end_to_end(panel_and_params, name):
    panel, params = panel_and_params
    result = run_backtest(
        panel,
        params.replace(start=dt.date(2012, 1, 1)),
        load_compute_weights(REPO / "strategies" / f"{name}.py"),
    )
    assert result.status == "completed" and len(result.trades) > 0
    w = result.target_weights.groupby("date")["weight"]
    assert (w.sum() <= 1 + 1e-12).all() and (result.target_weights["weight"] > 0).all()


def test_equal_weights_return_to_equal_at_each_rebalance(panel_and_params):
    panel, params = panel_and_params
    params = params.replace(fractional_shares=True, volume_cap=1.0)
    result = run_backtest(
        panel, params, load_compute_weights(REPO / "strategies" / "equal_weight.py")
    )
    pos, log = result.positions, result.runtime_log
    fill_days = log["date"].shift(-1)[log["rebalance"]].dropna()
    spreads = [
        pos[pos["date"] == d]["weight"].agg(lambda w: w.max() - w.min()) for d in fill_days[1:]
    ]
    assert len(fill_days) > 20 and max(spreads) < 0.01


def test_price_to_book_picks_the_cheapest_members(panel_and_params):
    panel, params = panel_and_params
    t = panel.day(pd.Timestamp("2012-06-01"))
    view = View(panel, t, np.zeros(len(panel.tickers)), 1e6, 60)
    w = load_compute_weights(REPO / "strategies" / "price_to_book.py")(view, params)
    f = view.fundamentals(["total_equity"], tickers=view.universe)["total_equity"]
    btm = (f / view.market(view.universe)["market_cap"]).dropna().sort_values()
    assert set(w.index) == set(btm.index[-20:]) and w.sum() == pytest.approx(1.0)


def test_random_selection_is_reproducible_per_seed_and_date(panel_and_params):
    panel, params = panel_and_params
    t = panel.day(pd.Timestamp("2012-06-01"))
    view = View(panel, t, np.zeros(len(panel.tickers)), 1e6, 60)
    pick = load_compute_weights(REPO / "strategies" / "random_selection.py")
    assert list(pick(view, params).index) == list(pick(view, params).index)
    a, b = themes.random_score(view, 7), themes.random_score(view, 7)
    c = themes.random_score(view, 8)
    assert a.equals(b) and not np.allclose(a, c)


def test_magic_formula_ranks_match_a_hand_computation():
    table = pd.DataFrame({
        "ebit":                [10.0, 20.0, 5.0, 30.0, 8.0],
        "market_cap":          [100.0, 300.0, 40.0, 200.0, 50.0],
        "total_debt":          [20.0, 0.0, 10.0, 50.0, 0.0],
        "cash":                [20.0, 100.0, 10.0, 10.0, 5.0],
        "current_assets":      [50.0, 120.0, 20.0, 80.0, 30.0],
        "current_liabilities": [30.0, 60.0, 15.0, 40.0, 20.0],
        "net_fixed_assets":    [30.0, 40.0, 5.0, 160.0, 15.0],
        "sector": ["Industrials", "Information Technology", "Materials", "Energy", "Financials"],
    }, index=["A", "B", "C", "D", "E"])  # fmt: skip
    # by hand: EV = 100, 200, 40, 240 (E is a financial: excluded)
    #   earnings yield = 0.100, 0.100, 0.125, 0.125  -> ranks 3, 3, 1, 1 (ties share the best rank)
    #   capital = 50, 100, 10, 200; return on capital = 0.2, 0.2, 0.5, 0.15 -> ranks 2, 2, 1, 4
    #   combined = 5, 5, 2, 5 -> C first; A, B, D tie at 5 and are ordered by earnings-yield rank
    ranks = themes.magic_formula_ranks(table)
    assert list(ranks.index[:1]) == ["C"] and "E" not in ranks.index
    assert ranks["ey_rank"].to_dict() == {"C": 1.0, "D": 1.0, "A": 3.0, "B": 3.0}
    assert ranks["roc_rank"].to_dict() == {"C": 1.0, "D": 4.0, "A": 2.0, "B": 2.0}
    assert ranks["combined_rank"].to_dict() == {"C": 2.0, "D": 5.0, "A": 5.0, "B": 5.0}
    assert ranks.loc["A", "earnings_yield"] == pytest.approx(0.1) and ranks.loc[
        "D", "return_on_capital"
    ] == pytest.approx(0.15)


@pytest.fixture(scope="module")
def long_run(default_market):
    """18 years of the default simulated market (300 tickers, TOP100), monthly rebalancing."""
    panel = panel_of(default_market, start=dt.date(2006, 1, 1), end=dt.date(2024, 12, 31))
    base = dict(
        SMALL,
        index="TOP100",
        start=dt.date(2006, 1, 1),
        end=dt.date(2024, 12, 31),
        rebalance="monthly",
    )

    def cagr(name, **kw):
        result = run_backtest(
            panel,
            Parameters(**{**base, **kw}),
            load_compute_weights(REPO / "strategies" / f"{name}.py"),
        )
        v = result.runtime_log["value"].to_numpy()
        return annual_return(v[1:] / v[:-1] - 1)

    randoms = [cagr("random_selection", seed=s) for s in range(5)]
    return cagr, randoms


MARGIN = 0.02  # two points a year over the mean of five random-selection runs (same N, same costs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["price_to_book", "momentum_12_1", "quality"])
def test_planted_premia_beat_random_selection(long_run, name):
    cagr, randoms = long_run
    ours = cagr(name)
    print(
        f"{name}: {ours:.2%} a year; random selection {np.mean(randoms):.2%} (max {max(randoms):.2%})"
    )
    assert ours > np.mean(randoms) + MARGIN and ours > max(randoms)
