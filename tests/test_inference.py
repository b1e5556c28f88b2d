"""V9: t-statistics that hold under overlapping observations. The estimators equal statsmodels'
on the same numbers; on a market whose setups share their days, a rule with no edge gets a large
naive t and a small robust one, and a real edge is still found."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from equity_backtest.evaluation import inference
from equity_backtest.research.setups.stats import findings, grade


def _ols_se(y, **fit) -> float:
    return float(sm.OLS(y, np.ones((len(y), 1))).fit(**fit).bse[0])


@pytest.mark.parametrize("lags", [0, 1, 4, 12])
def test_newey_west_equals_statsmodels(lags):
    rng = np.random.default_rng(lags)
    x = np.convolve(rng.normal(0.1, 1, 300), np.ones(5) / 5, mode="same")
    mine = inference.series_mean(x, lags)
    ref = _ols_se(x, cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
    assert mine["se"] == pytest.approx(ref, rel=1e-10)
    assert mine["t_stat"] == pytest.approx(x.mean() / ref, rel=1e-10)
    assert mine["t_stat_naive"] == pytest.approx(x.mean() / (x.std(ddof=1) / np.sqrt(len(x))))


@pytest.mark.parametrize("lags", [0, 3, 6])
def test_driscoll_kraay_equals_statsmodels(lags):
    rng = np.random.default_rng(10 + lags)
    periods = np.sort(rng.integers(0, 150, 2_000))
    common = np.convolve(rng.normal(0, 1, 150), np.ones(4) / 2, mode="same")
    y = common[periods] + rng.normal(0.05, 1, len(periods))
    mine = inference.panel_mean(y, periods, lags)
    ref = _ols_se(y, cov_type="hac-groupsum",
                  cov_kwds={"time": periods, "maxlags": lags, "use_correction": False})  # fmt: skip
    assert mine["se"] == pytest.approx(ref, rel=1e-10)
    assert inference.auto_lags(100) == 4 and inference.auto_lags(1000) == 6


def _overlapping_setups(
    edge: float, seed: int, days: int = 400, per_day: int = 40, horizon: int = 30
):
    """R of setups entered `per_day` at a time over `days` study days, each held `horizon` days:
    its R is the market's move over its own holding window (shared with every setup of that day
    and, in part, with those of the days before and after) plus its own noise, plus `edge`."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.25, days + horizon)  # one common daily move, in R
    window = np.convolve(market, np.ones(horizon), mode="valid")[:days]  # sum over the hold
    periods = np.repeat(np.arange(days), per_day)
    r = edge + window[periods] + rng.normal(0, 1.0, len(periods))
    return r, periods


def test_a_rule_with_no_edge_on_a_correlated_market_is_not_called_an_edge():
    """The naive t of a zero-edge rule is large (its trades are 16,000 draws of a few hundred
    independent market moves); the robust t, from the same numbers, is not."""
    naive, robust = [], []
    for seed in range(20):
        r, periods = _overlapping_setups(0.0, seed)
        result = inference.panel_mean(r, periods, lags=30)
        naive.append(abs(result["t_stat_naive"]))
        robust.append(abs(result["t_stat"]))
    assert np.median(naive) > 5  # the naive test calls most of these noise rules an edge
    assert np.mean(np.array(naive) > 1.96) > 0.7
    assert np.mean(np.array(robust) > 1.96) <= 0.2  # about the 5% a valid test allows


def test_a_real_edge_is_still_found():
    r, periods = _overlapping_setups(1.0, seed=3)
    result = inference.panel_mean(r, periods, lags=30)
    assert result["t_stat"] > 3 and result["ci95"][0] > 0
    assert inference.evidence(result, "R").startswith("a positive edge")


def test_the_findings_say_no_evidence_when_the_interval_spans_zero():
    """The setup study's findings follow the corrected numbers."""
    r, periods = _overlapping_setups(0.05, seed=0)  # (naive t -16.4, robust -0.81)
    noisy = {"net": grade(r, periods, 30)}
    control = {"net": grade(r - 0.05, periods, 30)}
    report = {
        "exits": {e: {"qualified": noisy, "control": control} for e in ("target", "horizon")},
        "inference": {"lags": 30},
    }
    said = " ".join(findings(report))
    assert abs(noisy["net"]["t_stat_naive"]) > 2.5 and abs(noisy["net"]["t_stat"]) < 1.96
    assert "no evidence of an edge" in said and "survives" not in said
