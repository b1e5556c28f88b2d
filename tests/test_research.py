"""S3: factor research finds the planted momentum and nothing in noise."""

import datetime as dt
import json

import numpy as np
import pytest

from equity_backtest.config import Parameters
from equity_backtest.research import factors as research
from tests.conftest import REPO, SMALL, panel_of, run_script


@pytest.fixture(scope="module")
def setup(default_market):
    panel = panel_of(default_market, start=dt.date(2006, 1, 1), end=dt.date(2024, 12, 31))
    params = Parameters(
        **{**SMALL, "index": "TOP100", "start": dt.date(2006, 1, 1), "end": dt.date(2024, 12, 31)}
    )
    return panel, params


def test_planted_momentum_has_a_positive_significant_ic(setup):
    panel, params = setup
    r = research.study(
        panel, params, research.Signal.from_strategy(REPO / "strategies" / "momentum_12_1.py"), 21
    )
    print({k: r[k] for k in ("mean_ic", "ic_t_stat", "windows", "top_minus_bottom")})
    assert r["mean_ic"] > 0 and r["ic_t_stat"] > 2 and r["significant"] and r["reliable"]
    assert (
        r["top_minus_bottom"] > 0 and r["quantile_mean_returns"][-1] > r["quantile_mean_returns"][0]
    )


def test_noise_has_no_ic_and_is_not_flagged(setup):
    panel, params = setup
    r = research.study(
        panel,
        params,
        research.Signal.from_strategy(REPO / "strategies" / "random_selection.py"),
        21,
    )
    print({k: r[k] for k in ("mean_ic", "ic_t_stat", "windows")})
    assert abs(r["mean_ic"]) < 0.01 and abs(r["ic_t_stat"]) < 2 and not r["significant"]
    assert r["top_quantile_turnover"] > 0.6  # a random top group is mostly replaced each window


def test_few_windows_are_flagged_unreliable(setup):
    panel, params = setup
    short = params.replace(start=dt.date(2010, 1, 1), end=dt.date(2010, 12, 31))
    r = research.study(panel, short, research.Signal.from_field("market_cap"), 63)
    assert r["windows"] < 12 and not r["reliable"] and not r["significant"]


def test_forward_returns_compound_total_returns(setup):
    panel, _ = setup
    t = 1000
    expected = np.prod(1 + np.nan_to_num(panel.total_return[t + 1 : t + 22]), axis=0) - 1
    assert np.allclose(research.forward_returns(panel, t, 21), expected)


@pytest.mark.slow
def test_the_command_writes_json_and_html(project):
    out = project / "results" / "factor"
    run_script(
        project,
        "-m",
        "equity_backtest.research",
        "--signal",
        str(REPO / "strategies" / "quality.py"),
        "--horizons",
        "21",
        "--out",
        str(out),
        "--quiet",
    )
    report = json.loads((out / "factor_report.json").read_text())
    assert report["signal"] == "quality" and report["horizons"][0]["windows"] > 12
    assert "data:image/png;base64," in (out / "factor_report.html").read_text()
