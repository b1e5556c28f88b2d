"""V3, V8 and the trade analysis: tables on constructed series, findings that flip with the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.evaluation.tables import (
    drawdown_periods,
    monthly_returns,
    stress_events,
    yearly_returns,
)
from equity_backtest.evaluation.tearsheet import evaluate
from equity_backtest.evaluation.trading import round_trip_stats, round_trips
from equity_backtest.run import runner
from tests.conftest import REPO, params_for


def test_drawdown_periods_peak_valley_recovery():
    days = pd.bdate_range("2020-01-01", periods=8)
    r = pd.Series([0.10, -0.20, 0.05, 0.30, -0.05, -0.05, 0.02, 0.0], index=days)
    dd = drawdown_periods(r)
    first = dd.iloc[0]
    assert first["peak"] == days[0] and first["valley"] == days[1] and first["recovery"] == days[3]
    assert first["depth"] == pytest.approx(-0.20)
    second = dd.iloc[1]
    assert second["peak"] == days[3] and second["valley"] == days[5] and pd.isna(second["recovery"])
    assert second["depth"] == pytest.approx(0.95 * 0.95 - 1) and not second["recovered"]
    assert second["duration_days"] == (days[-1] - days[3]).days


def test_calendar_returns_compound_and_stress_events_inside_the_run_only():
    days = pd.bdate_range("2020-01-01", "2021-12-31")
    r = pd.Series(0.001, index=days)
    m = monthly_returns(r)
    jan = days[(days.year == 2020) & (days.month == 1)]
    assert m.loc[2020, 1] == pytest.approx(1.001 ** len(jan) - 1)
    y = yearly_returns(r, r * 0)
    assert y.loc[2021, "portfolio"] == pytest.approx(1.001 ** (days.year == 2021).sum() - 1)
    s = stress_events(r, r * 0)
    assert s["event"].tolist() == ["COVID crash"]
    # the simulated market's 2020 is not the real one: no real-world event is named on it
    assert stress_events(r, r * 0, "simulated").empty
    assert stress_events(r, r * 0, "wrds")["event"].tolist() == ["COVID crash"]
    # ... its own episodes are, where the simulator recorded them and they lie inside the run
    regimes = pd.DataFrame(
        {
            "start": pd.to_datetime(["2019-06-03", "2020-03-02", "2021-11-01"]),
            "end": pd.to_datetime(["2020-02-03", "2020-04-30", "2022-03-01"]),
            "regime": ["bear market", "recovery", "crash"],
        }
    )
    own = stress_events(r, r * 0, "simulated", regimes)
    assert own["event"].tolist() == ["recovery (simulated)"]
    spring = (days >= "2020-03-02") & (days <= "2020-04-30")
    assert own["portfolio"].iloc[0] == pytest.approx(1.001 ** spring.sum() - 1)
    assert s["portfolio"].iloc[0] == pytest.approx(
        1.001 ** ((days >= "2020-02-19") & (days <= "2020-03-23")).sum() - 1
    )


def test_round_trips_from_cash_flows():
    dates = pd.bdate_range("2020-01-01", periods=10)
    positions = pd.DataFrame(
        {
            "date": list(dates[1:4]) + list(dates[6:10]),
            "ticker": ["A"] * 3 + ["A"] * 4,
            "shares": [10.0] * 3 + [5.0] * 4,
            "value": [1000.0, 1050.0, 1100.0] + [500.0, 510.0, 520.0, 530.0],
            "weight": 0.1,
        }
    )
    ledger = pd.DataFrame(
        {
            "date": [dates[1], dates[1], dates[2], dates[4], dates[4], dates[6], dates[6]],
            "kind": [
                "purchase",
                "commission",
                "dividend",
                "sale",
                "commission",
                "purchase",
                "commission",
            ],
            "ticker": ["A"] * 7,
            "amount": [-1000.0, -1.0, 5.0, 1200.0, -1.0, -500.0, -1.0],
        }
    )
    trips = round_trips(positions, ledger, dates)
    assert len(trips) == 2
    first, second = trips.iloc[0], trips.iloc[1]
    assert first["is_closed"] and first["opened"] == dates[1] and first["closed"] == dates[4]
    assert first["pnl"] == pytest.approx(1200 + 5 - 1000 - 2) and first["invested"] == 1000.0
    assert first["days"] == (dates[4] - dates[1]).days
    assert not second["is_closed"] and second["pnl"] == pytest.approx(530 - 500 - 1)
    stats = round_trip_stats(trips)
    assert (
        stats["round_trips"] == 1
        and stats["open_positions_at_end"] == 1
        and stats["win_rate"] == 1.0
    )


def test_expectancy_without_the_top_winners_exposes_an_outlier_edge():
    pnl = [-10.0] * 19 + [1000.0]
    trips = pd.DataFrame({"pnl": pnl, "is_closed": True, "days": 5})
    stats = round_trip_stats(trips)
    assert stats["expectancy"] > 0 and stats["expectancy_without_top_5pct_winners"] < 0
    assert stats["profit_factor"] == pytest.approx(1000 / 190)


def _run(tmp: Path, name: str, algorithm: Path, **kw) -> dict:
    params = params_for(tmp, algorithm=str(algorithm), **kw)
    outcome = runner.run_single(params, REPO / "parameters.py", tmp / "results" / name)
    return evaluate(outcome.run_dir)


def test_findings_flip_when_the_data_flips(tmp_path, small_store):
    # in this small market the index rises: cash trails it, and the index's own weights with
    # half as much again borrowed beat it (the same names, more of the rise)
    (tmp_path / "cash.py").write_text("def compute_weights(view, params):\n    return None\n")
    (tmp_path / "levered.py").write_text(
        "def compute_weights(view, params):\n"
        "    caps = view.market(view.universe)['market_cap'].dropna()\n"
        "    return 1.5 * caps / caps.sum()\n"
    )
    cash = _run(tmp_path, "cash", tmp_path / "cash.py", datasets_dir=str(small_store / "datasets"))
    levered = _run(
        tmp_path,
        "levered",
        tmp_path / "levered.py",
        datasets_dir=str(small_store / "datasets"),
        max_leverage=1.5,
    )
    costly = _run(
        tmp_path,
        "costly",
        REPO / "strategies" / "equal_weight.py",
        datasets_dir=str(small_store / "datasets"),
        commission_rate=0.02,
        rebalance="weekly",
    )
    assert cash["findings"][0].startswith("The portfolio trails the TOP20 index")
    assert levered["findings"][0].startswith("The portfolio beats the TOP20 index")
    # the stress events of a simulated run are the simulated market's own recorded episodes
    events = [e["event"] for e in levered["stress_events"]]
    assert events and all(e.endswith("(simulated)") for e in events)
    html = (tmp_path / "results" / "levered" / "tearsheet.html").read_text()
    assert events[0] in html and "Lehman" not in html
    assert costly["findings"][0].startswith("The portfolio trails the TOP20 index")
    assert not any("Costs took" in f or "costs of" in f for f in cash["findings"])
    assert any("deepened the loss" in f or "Costs took" in f for f in costly["findings"])
    assert any("worst drawdown" in f for f in costly["findings"])
    assert not any("worst drawdown" in f for f in cash["findings"])
    on_disk = json.loads((tmp_path / "results" / "costly" / "metrics.json").read_text())
    assert on_disk["findings"] == costly["findings"]
    assert np.isfinite(on_disk["portfolio"]["daily_conditional_value_at_risk"])
