"""V2: our metrics equal empyrical-reloaded's on the same returns."""

import empyrical as ep
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equity_backtest.evaluation import metrics as m


def _series(seed, n=600):
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0004, 0.012, n)
    r = 0.0001 + 0.9 * b + rng.normal(0, 0.006, n)
    return r, b


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rf_annual=st.sampled_from([0.0, 0.02, 0.05]))
def test_metrics_equal_empyrical(seed, rf_annual):
    r, b = _series(seed)
    rf = m.daily_risk_free(rf_annual)
    assert m.cumulative_return(r) == pytest.approx(ep.cum_returns_final(r))
    assert m.annual_return(r) == pytest.approx(ep.annual_return(r))
    assert m.annual_volatility(r) == pytest.approx(ep.annual_volatility(r))
    assert m.sharpe_ratio(r, rf) == pytest.approx(ep.sharpe_ratio(r, risk_free=rf))
    assert m.sortino_ratio(r, rf) == pytest.approx(ep.sortino_ratio(r, required_return=rf))
    assert m.beta(r, b, rf) == pytest.approx(ep.beta(r, b, risk_free=rf))
    assert m.alpha(r, b, rf) == pytest.approx(ep.alpha(r, b, risk_free=rf))
    assert m.information_ratio(r, b) == pytest.approx(ep.excess_sharpe(r, b) * np.sqrt(252))
    # drawdown: ours is anchored at the starting value; with a first day of 0 both conventions agree
    r0 = np.r_[0.0, r]
    assert m.max_drawdown(r0) == pytest.approx(ep.max_drawdown(r0))
    assert m.calmar_ratio(r0) == pytest.approx(ep.calmar_ratio(r0))


def test_drawdown_counts_a_loss_on_the_first_day():
    assert m.max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(-0.1)


def test_degenerate_inputs_give_nan_not_errors():
    flat = np.zeros(10)
    assert (
        np.isnan(m.sharpe_ratio(flat))
        and np.isnan(m.sortino_ratio(flat))
        and np.isnan(m.calmar_ratio(flat))
    )
    assert np.isnan(m.annual_return(np.array([])))
