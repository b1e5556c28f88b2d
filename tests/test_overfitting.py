"""V7: CSCV's probability of backtest overfitting, degradation and the deflated Sharpe ratio.

Tolerances: over ten seeds of 50 pure-noise trials (1,000 days, 16 blocks) the mean PBO lies in
[0.4, 0.65] and every seed's PBO above 0.25; the degradation slope of noise lies in [-1.1, 0.1]:
near 0 or negative, never clearly positive (within one fixed sample a trial's in-sample luck is
paid back out of sample, so CSCV's slope for noise leans negative). With one trial given a real
edge (+0.2% a day), every seed's PBO is below 0.2 and that trial is the one selected.
"""

import numpy as np
import pandas as pd
import pytest

from equity_backtest.evaluation.overfitting import analyse, cscv, deflated_sharpe

SEEDS = range(10)


def noise(seed, n=50, days=1000):
    return pd.DataFrame(
        np.random.default_rng(seed).normal(0, 0.01, (days, n)),
        columns=[f"trial{i:02d}" for i in range(n)],
    )


@pytest.fixture(scope="module")
def noise_results():
    return [analyse(noise(s))[0] for s in SEEDS]


@pytest.fixture(scope="module")
def edge_results():
    out = []
    for s in SEEDS:
        m = noise(s)
        m["trial07"] += 0.002
        out.append(analyse(m)[0])
    return out


def test_pure_noise_is_overfit_about_half_the_time(noise_results):
    pbo = [r["pbo"] for r in noise_results]
    print("noise PBO per seed:", [round(p, 2) for p in pbo])
    assert 0.4 <= np.mean(pbo) <= 0.65 and min(pbo) > 0.25
    slopes = [r["degradation_slope"] for r in noise_results]
    print("noise slopes:", [round(s, 2) for s in slopes])
    assert all(-1.1 <= s <= 0.1 for s in slopes)
    assert all(r["deflated_sharpe"]["deflated_sharpe_ratio"] < 0.95 for r in noise_results)


def test_a_real_edge_is_found_and_not_overfit(edge_results, noise_results):
    print("edge PBO per seed:", [round(r["pbo"], 2) for r in edge_results])
    assert all(r["pbo"] < 0.2 for r in edge_results)
    assert all(r["best_trial"] == "trial07" for r in edge_results)
    assert np.mean([r["probability_of_loss"] for r in edge_results]) < 0.1
    dsr_edge = np.mean([r["deflated_sharpe"]["deflated_sharpe_ratio"] for r in edge_results])
    dsr_noise = np.mean([r["deflated_sharpe"]["deflated_sharpe_ratio"] for r in noise_results])
    assert dsr_edge > 0.9 > dsr_noise


def test_a_trial_better_in_every_block_is_never_overfit():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.01, (800, 1))
    m = np.hstack([base + 0.002, base])  # same noise, one with a constant edge
    r = cscv(m, blocks=8)
    assert r.pbo == 0.0 and r.splits == 70 and (r.out_of_sample > r.out_of_sample.min() - 1).all()


def test_deflated_sharpe_falls_as_more_trials_are_tried():
    r = np.random.default_rng(3).normal(0.0008, 0.01, 1000)
    few = deflated_sharpe(r, np.random.default_rng(4).normal(0, 0.03, 5))
    many = deflated_sharpe(r, np.random.default_rng(4).normal(0, 0.03, 500))
    assert many["expected_max_sharpe_daily"] > few["expected_max_sharpe_daily"]
    assert many["deflated_sharpe_ratio"] < few["deflated_sharpe_ratio"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="even"):
        cscv(noise(0, 3, 100), blocks=5)
    with pytest.raises(ValueError, match="two trials"):
        cscv(noise(0, 1, 100))
