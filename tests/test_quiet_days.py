"""Quiet days (#31): run_backtest marks a run of days on which the shares cannot change in one
pass (Heartbeat.coast) instead of calling each step of each day. The reference is the plain
procedure, Heartbeat.step on every day (as live mode runs it): every output must be the same bit
for bit, whatever the settings and wherever a run stops or resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.engine.checkpoint import Checkpoints
from equity_backtest.engine.clock import heartbeat_range, rebalance_days
from equity_backtest.engine.loop import Heartbeat, run_backtest
from equity_backtest.engine.loop_state import COL, RUNTIME_COLUMNS, LoopState
from equity_backtest.engine.positions import positions_table
from equity_backtest.engine.spec import EngineSpec
from tests.conftest import SMALL, panel_of
from tests.test_engine_features import FLAT, hold, tiny_panel


def every_day(panel, params, rule) -> dict:
    """The loop without quiet days: step() on each day until the end or until equity is gone."""
    spec = EngineSpec.of(params)
    t0, t1 = heartbeat_range(panel.dates, spec.start, spec.end)
    rebalance = rebalance_days(panel.dates, t0, t1, spec.rebalance)
    before = np.nan_to_num(panel.mark[max(t0 - 1, 0)])
    state = LoopState.fresh(spec, len(panel.tickers), t1 - t0 + 1, None, before)
    day = Heartbeat(panel, spec, state, t0)
    for t in range(t0, t1 + 1):
        if day.step(t, rebalance[t], rule, params, "algorithm"):
            break
    k = t - t0 + 1
    return {
        "log": state.log_rows[:k],
        "trades": state.ledger.trades_table(panel.dates, panel.tickers),
        "cash": state.ledger.cash_table(panel.dates, panel.tickers),
        "positions": positions_table(
            state.held.dense(k), panel, t0, state.log_rows[:k, COL["value"]]
        ),
    }


def assert_same(result, reference: dict) -> None:
    log = result.runtime_log[RUNTIME_COLUMNS[1:]].to_numpy(dtype=float)
    assert log.shape == reference["log"].shape
    assert np.array_equal(log, reference["log"])  # every bit of every column of every day
    pd.testing.assert_frame_equal(result.trades, reference["trades"], check_exact=True)
    pd.testing.assert_frame_equal(result.cash_ledger, reference["cash"], check_exact=True)
    pd.testing.assert_frame_equal(result.positions, reference["positions"], check_exact=True)


def equal_weights(view, params):
    u = view.universe
    return pd.Series(0.95 / len(u), index=u)


def levered(view, params):
    u = view.universe
    return pd.Series(1.4 / len(u), index=u)


def long_short(view, params):
    caps = view.market(view.universe)["market_cap"].dropna().sort_values()
    return pd.concat(
        [pd.Series(-0.4 / 5, index=caps.index[:5]), pd.Series(1.2 / 10, index=caps.index[-10:])]
    )


def with_exits(**columns):
    """Equal weights on ten members with exit columns: 'stop' and 'target' as fractions of the
    close, 'exit_after' in bars."""

    def compute_weights(view, params):
        close = view.market(view.universe)["close"].dropna().iloc[:10]
        frame = pd.DataFrame({"weight": 1 / 12}, index=close.index)
        for column, value in columns.items():
            frame[column] = close * value if column != "exit_after" else value
        return frame

    return compute_weights


SETTINGS = {
    "monthly, costs on": (equal_weights, {}),
    "interest on cash": (equal_weights, {"cash_interest": True, "rebalance": "quarterly"}),
    "levered long (borrowed cash pays interest)": (levered, {"max_leverage": 1.5}),
    "levered long-short": (
        long_short,
        {"allow_short": True, "max_leverage": 1.6, "short_fee_rate": 0.01},
    ),
    "unfilled orders carried": (equal_weights, {"unfilled": "carry", "volume_cap": 0.0005}),
    "stops and targets": (with_exits(stop=0.9, target=1.2), {"rebalance": "quarterly"}),
    "time exits": (with_exits(exit_after=30.0), {"rebalance": "quarterly"}),
    "buy and hold": (equal_weights, {"rebalance": "never"}),
}


@pytest.fixture(scope="module")
def small_panel():
    from equity_backtest.data.vendors import simulated
    from tests.conftest import small_settings

    return panel_of(simulated.simulate(small_settings()))


def small_params(**changes) -> Parameters:
    return Parameters(**{**SMALL, **changes})


@pytest.mark.parametrize("name", SETTINGS)
def test_a_run_over_quiet_days_is_the_run_stepped_day_by_day(small_panel, name):
    rule, changes = SETTINGS[name]
    params = small_params(**changes)
    result = run_backtest(small_panel, params, rule)
    assert len(result.trades) and (result.runtime_log["dividends"] > 0).any()
    assert_same(result, every_day(small_panel, params, rule))


def test_a_run_resumed_inside_a_quiet_stretch_is_the_uninterrupted_run(small_panel, tmp_path):
    """Checkpoints every 7 days fall inside runs of quiet days: a run of them stops there, and
    a run resumed from any of them ends as the uninterrupted one."""
    params = small_params(rebalance="quarterly")
    whole = run_backtest(small_panel, params, equal_weights)
    saved = Checkpoints(Path(tmp_path), "quiet", 7, 0.0)
    before_days, save = [], saved.save
    saved.save = lambda state: (before_days.append(int(state["next_t"])), save(state))[1]
    run_backtest(small_panel, params, equal_weights, checkpoints=saved)
    t0, t1 = heartbeat_range(small_panel.dates, params.start, params.end)
    assert before_days == list(range(t0 + 7, t1 + 1, 7))  # every 7th day, quiet or not
    resumed = run_backtest(small_panel, params, equal_weights, checkpoints=saved)
    pd.testing.assert_frame_equal(resumed.runtime_log, whole.runtime_log, check_exact=True)
    pd.testing.assert_frame_equal(resumed.cash_ledger, whole.cash_ledger, check_exact=True)


def test_equity_gone_on_a_quiet_day_stops_the_run_that_day():
    """A held stock loses 70% a day and nothing else happens: the days after the purchase are
    quiet, and the run stops on the first close whose value cannot pay the minimum commission."""
    falling = [(100, 101, 99, 100), (100, 101, 99, 100)]
    for _ in range(10):
        c = falling[-1][3] * 0.3
        falling.append((c, c, c, c))
    panel, params = tiny_panel({"A": falling, "B": FLAT}, commission_min=1.0)
    rule = hold(0.9999)  # (the rest pays the commission)
    result = run_backtest(panel, params, rule)
    rl = result.runtime_log
    assert result.status == "stopped: equity exhausted"
    assert rl["value"].iloc[-1] <= 1.0 < rl["value"].iloc[-2]
    assert rl["positions"].iloc[-1] == 1 and rl["date"].iloc[-1] < panel.dates[-1]
    assert f"gone on {rl['date'].iloc[-1]:%Y-%m-%d}" in result.message
    assert_same(result, every_day(panel, params, rule))
