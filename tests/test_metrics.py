"""V2: our metrics equal empyrical-reloaded's on the same returns, to 1e-8, on pyfolio's published
test returns (2004-2009, 1,511 days, from the pyfolio-reloaded sdist) and on generated series."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equity_backtest.data.frequency import periodic_rate
from equity_backtest.evaluation import metrics as m

DATA = Path(__file__).parent / ".data"


@pytest.fixture(scope="session")
def pyfolio_returns() -> np.ndarray:
    """pyfolio's test_returns.csv.gz, fetched once with `pip download` (PyPI) and cached."""
    target = DATA / "test_returns.csv.gz"
    if not target.is_file():
        DATA.mkdir(exist_ok=True)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "pyfolio-reloaded==0.10.1",
                "-d",
                str(DATA),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        sdists = sorted(DATA.glob("pyfolio_reloaded-*.tar.gz"))
        if not sdists:
            pytest.fail(
                f"could not download the pyfolio-reloaded sdist from PyPI:\n{proc.stderr[-2000:]}"
            )
        with tarfile.open(sdists[-1]) as tar:
            member = next(
                x
                for x in tar.getmembers()
                if x.name.endswith("tests/test_data/test_returns.csv.gz")
            )
            target.write_bytes(tar.extractfile(member).read())
    frame = pd.read_csv(target, header=None, index_col=0, compression="gzip")
    return frame.iloc[:, 0].to_numpy(dtype=float)


def _generated(seed, n=600):
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0004, 0.012, n)
    r = 0.0001 + 0.9 * b + rng.normal(0, 0.006, n) + rng.standard_t(3, n) * 0.002
    return r, b


def _compare(r: np.ndarray, b: np.ndarray, rf: float) -> None:
    tol = dict(rel=1e-8, abs=1e-12)
    pairs = {
        "cumulative_return": (m.cumulative_return(r), ep.cum_returns_final(r)),
        "annual_return": (m.annual_return(r), ep.annual_return(r)),
        "annual_volatility": (m.annual_volatility(r), ep.annual_volatility(r)),
        "sharpe_ratio": (m.sharpe_ratio(r, rf), ep.sharpe_ratio(r, risk_free=rf)),
        "sortino_ratio": (m.sortino_ratio(r, rf), ep.sortino_ratio(r, required_return=rf)),
        "omega_ratio": (m.omega_ratio(r, rf), ep.omega_ratio(r, risk_free=rf)),
        "stability": (m.stability(r), ep.stability_of_timeseries(r)),
        "tail_ratio": (m.tail_ratio(r), ep.tail_ratio(r)),
        "value_at_risk": (m.value_at_risk(r), ep.value_at_risk(r)),
        "conditional_value_at_risk": (
            m.conditional_value_at_risk(r),
            ep.conditional_value_at_risk(r),
        ),
        "beta": (m.beta(r, b, rf), ep.beta(r, b, risk_free=rf)),
        "alpha": (m.alpha(r, b, rf), ep.alpha(r, b, risk_free=rf)),
        "information_ratio": (m.information_ratio(r, b), ep.excess_sharpe(r, b) * np.sqrt(252)),
    }
    # drawdown: ours is anchored at the starting value; with a first day of 0 the conventions agree
    r0 = np.r_[0.0, r]
    pairs["max_drawdown"] = (m.max_drawdown(r0), ep.max_drawdown(r0))
    pairs["calmar_ratio"] = (m.calmar_ratio(r0), ep.calmar_ratio(r0))
    for name, (ours, theirs) in pairs.items():
        assert ours == pytest.approx(theirs, **tol), name
    # skew and kurtosis: pyfolio uses scipy.stats (biased, excess kurtosis)
    from scipy import stats

    assert m.skewness(r) == pytest.approx(stats.skew(r), **tol)
    assert m.kurtosis(r) == pytest.approx(stats.kurtosis(r), **tol)


@pytest.mark.parametrize("rf_annual", [0.0, 0.03])
def test_metrics_equal_empyrical_on_pyfolio_test_returns(pyfolio_returns, rf_annual):
    r = pyfolio_returns
    assert len(r) == 1511
    b = np.r_[0.0, r[:-1]] * 0.5 + np.random.default_rng(0).normal(0, 0.005, len(r))  # a benchmark
    _compare(r, b, periodic_rate(rf_annual, 252))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rf_annual=st.sampled_from([0.0, 0.02, 0.05]))
def test_metrics_equal_empyrical_on_generated_series(seed, rf_annual):
    _compare(*_generated(seed), periodic_rate(rf_annual, 252))


def test_drawdown_counts_a_loss_on_the_first_day():
    assert m.max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(-0.1)


def test_degenerate_inputs_give_nan_not_errors():
    flat = np.zeros(10)
    assert np.isnan(m.sharpe_ratio(flat)) and np.isnan(m.sortino_ratio(flat))
    assert np.isnan(m.calmar_ratio(flat)) and np.isnan(m.omega_ratio(flat))
    assert np.isnan(m.annual_return(np.array([])))


@pytest.mark.parametrize("period, P", [("weekly", 52), ("monthly", 12)])
def test_metrics_on_weekly_and_monthly_bars_equal_empyrical(period, P):
    rng = np.random.default_rng(11)
    r = rng.normal(0.008, 0.045, 120)
    b = 0.6 * r + rng.normal(0.0, 0.02, 120)
    rf = periodic_rate(0.03, P)
    tol = dict(rel=1e-9, abs=1e-12)
    assert m.annual_return(r, P) == pytest.approx(ep.annual_return(r, period=period), **tol)
    assert m.annual_volatility(r, P) == pytest.approx(ep.annual_volatility(r, period=period), **tol)
    assert m.sharpe_ratio(r, rf, P) == pytest.approx(ep.sharpe_ratio(r, rf, period=period), **tol)
    assert m.sortino_ratio(r, rf, P) == pytest.approx(ep.sortino_ratio(r, rf, period=period), **tol)
    assert m.alpha(r, b, rf, P) == pytest.approx(ep.alpha(r, b, rf, period=period), **tol)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_tear_sheets_added_figures_equal_quantstats_and_empyrical(seed):
    """V9: the rf = 0 Sharpe ratio (empyrical's and pyfolio's default), the probabilistic Sharpe
    ratio, the best and worst day and month (quantstats'), and the trailing returns (computed
    here from their definition) on the same returns."""
    import quantstats as qs

    r, _ = _generated(seed, n=2_600)
    dates = pd.bdate_range("2014-01-01", periods=len(r))
    series = pd.Series(r, index=dates)
    rf_annual = 0.02
    rf = (1 + rf_annual) ** (1 / 252) - 1
    tol = dict(rel=1e-8, abs=1e-12)
    assert m.sharpe_ratio(r, 0.0) == pytest.approx(ep.sharpe_ratio(r, risk_free=0.0), **tol)
    assert m.probabilistic_sharpe_ratio(r, rf) == pytest.approx(
        qs.stats.probabilistic_sharpe_ratio(series, rf=rf_annual, periods=252), **tol
    )
    extremes = m.best_and_worst(series)
    assert extremes["best_bar"] == pytest.approx(qs.stats.best(series), **tol)
    assert extremes["worst_bar"] == pytest.approx(qs.stats.worst(series), **tol)
    assert extremes["best_month"] == pytest.approx(qs.stats.best(series, aggregate="ME"), **tol)
    assert extremes["worst_month"] == pytest.approx(qs.stats.worst(series, aggregate="ME"), **tol)
    trailing = m.trailing_returns(r)
    assert trailing["trailing_1y"] == pytest.approx(np.prod(1 + r[-252:]) - 1, **tol)
    assert trailing["trailing_3y"] == pytest.approx(np.prod(1 + r[-756:]) ** (1 / 3) - 1, **tol)
    assert trailing["trailing_10y"] == pytest.approx(np.prod(1 + r[-2520:]) ** (1 / 10) - 1, **tol)
    assert m.trailing_returns(r[:300])["trailing_3y"] is None
