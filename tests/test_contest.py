"""V6: contest checks on constructed portfolios: a base that passes every constraint, and one
variant per constraint that breaks exactly that one; the score against a direct computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equity_backtest.evaluation import contest

DAYS = pd.bdate_range("2018-01-01", periods=600)
TICKERS = [f"T{i:02d}" for i in range(40)]
SECTORS = pd.Series(
    [f"S{(i // 2) % 4}" for i in range(40)], index=TICKERS
)  # a long and a short per pair
LONG = np.array([i % 2 == 0 for i in range(40)])  # each sector: 5 longs, 5 shorts


def base(**change) -> contest.ContestInputs:
    rng = np.random.default_rng(0)
    w = np.where(LONG, 0.025, -0.025)
    weights = pd.DataFrame(np.tile(w, (len(DAYS), 1)), index=DAYS, columns=TICKERS)
    bench = pd.Series(rng.normal(0.0003, 0.01, len(DAYS)), index=DAYS)
    returns = pd.Series(rng.normal(0.0006, 0.004, len(DAYS)), index=DAYS)
    styles = {
        s: pd.DataFrame(rng.normal(0, 0.3, (len(DAYS), 40)), index=DAYS, columns=TICKERS)
        for s in contest.STYLES
    }
    liquid = pd.DataFrame(True, index=DAYS, columns=TICKERS)
    turnover = pd.Series(0.10, index=DAYS)
    x = contest.ContestInputs(returns, bench, weights, turnover, SECTORS, styles, liquid)
    for k, v in change.items():
        setattr(x, k, v)
    return x


def results(x) -> dict[str, str]:
    table, _ = contest.check(x)
    return dict(zip(table["constraint"], table["result"], strict=True))


def test_the_market_neutral_base_passes_everything():
    table, summary = contest.check(base())
    assert (table["result"] == "PASS").all(), table
    assert summary["all_pass"] and summary["note"] == ""


def _variants():
    x = base()
    w = x.weights
    one_big = w.copy()
    one_big.iloc[:, 0] = 0.12
    # S0 all long 2.9%, S1 all short 2.9%: sector net 29%, gross 1.08, net 0, no position above 5%
    tilt = np.where(
        SECTORS == "S0", 0.029, np.where(SECTORS == "S1", -0.029, np.where(LONG, 0.025, -0.025))
    )
    sector_tilt = pd.DataFrame(np.tile(tilt, (len(DAYS), 1)), index=DAYS, columns=TICKERS)
    # longs 2.9%, shorts 2.1%: net 16%, sectors still balanced (4% each)
    net_tilt = pd.DataFrame(
        np.tile(np.where(LONG, 0.029, -0.021), (len(DAYS), 1)), index=DAYS, columns=TICKERS
    )

    aligned = {
        s: pd.DataFrame(
            np.tile(np.where(LONG, 2.0, -2.0), (len(DAYS), 1)), index=DAYS, columns=TICKERS
        )
        for s in contest.STYLES
    }
    illiquid = pd.DataFrame(np.tile(~LONG, (len(DAYS), 1)), index=DAYS, columns=TICKERS)
    return {
        "position_concentration": {"weights": one_big},
        "gross_leverage": {"weights": w * 1.5},
        "turnover": {"turnover": pd.Series(0.9, index=DAYS)},
        "net_exposure": {"weights": net_tilt},
        "beta_to_index": {"returns": x.benchmark * 0.9 + x.returns * 0.1 + 0.0005},
        "sector_exposure": {"weights": sector_tilt},
        "style_exposure": {"styles": aligned},
        "tradable_universe": {"liquid": illiquid},
        "positive_return": {"returns": x.returns - 0.001},
    }


@pytest.mark.parametrize("constraint", list(_variants()))
def test_each_broken_constraint_fails_alone(constraint):
    got = results(base(**_variants()[constraint]))
    failing = {k for k, v in got.items() if v == "FAIL"}
    assert failing == {constraint}, got


def test_soft_limit_may_be_broken_on_two_percent_of_days_and_hard_never():
    x = base()
    w = x.weights.copy()
    w.iloc[10:20, 0] = 0.07  # 10 of 595 days (1.7%) over the 5% soft limit, under the hard 10%
    assert results(base(weights=w))["position_concentration"] == "PASS"
    w.iloc[10:25, 0] = 0.07  # 2.5% of days
    assert results(base(weights=w))["position_concentration"] == "FAIL"
    w = x.weights.copy()
    w.iloc[30, 0] = 0.11  # one day over the hard limit
    assert results(base(weights=w))["position_concentration"] == "FAIL"


def test_score_is_the_sum_of_volatility_scaled_returns():
    r = base().returns
    expected = 0.0
    for t in range(63, len(r)):
        vol = np.std(r.iloc[t - 63 : t], ddof=1) * np.sqrt(252)
        expected += r.iloc[t] / max(vol, 0.02)
    assert contest.score(r) == pytest.approx(expected, rel=1e-10)


def test_a_run_shorter_than_two_years_says_so():
    x = base()
    short = contest.ContestInputs(
        x.returns[:300],
        x.benchmark[:300],
        x.weights[:300],
        x.turnover[:300],
        SECTORS,
        {k: v[:300] for k, v in x.styles.items()},
        x.liquid[:300],
    )
    _, summary = contest.check(short)
    assert "needs two years" in summary["note"] and not summary["all_pass"]


def test_the_first_five_days_getting_invested_are_not_held_against_a_strategy():
    x = base()
    w = x.weights.copy()
    w.iloc[0] = 0.0  # day 1: all cash, as every run starts
    w.iloc[1:5, 0] = 0.2  # days 2-5: still building positions
    assert results(base(weights=w))["gross_leverage"] == "PASS"
    assert results(base(weights=w))["position_concentration"] == "PASS"
    w.iloc[5, 0] = 0.2  # the sixth day counts
    assert results(base(weights=w))["position_concentration"] == "FAIL"
