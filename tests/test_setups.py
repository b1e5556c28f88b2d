"""Setup studies: outcomes walked bar by bar (gaps, both-in-one-bar, splits, time exits, costs in
R), no look-ahead, a planted edge found and a random rule not, findings that flip with the data,
and the CLI's report files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data.panel import panel_from_tables
from equity_backtest.data.vendors import simulated
from equity_backtest.research import setups
from tests.conftest import REPO, panel_of, run_script, small_settings, write_parameters_file

DAYS = pd.bdate_range("2020-01-01", periods=60)


def _panel(bars: dict[str, pd.DataFrame], splits=(), delistings=(), days=DAYS):
    """A panel from hand-made OHLC bars: {ticker: frame with open, high, low, close}."""
    market = pd.concat(
        [b.assign(ticker=t, date=days[: len(b)], volume=1e6, market_cap=b["close"] * 1e6)
         for t, b in bars.items()],
        ignore_index=True,
    )  # fmt: skip
    actions = [(t, days[k], "split", r) for t, k, r in splits]
    actions += [(t, days[k], "delisting", v) for t, k, v in delistings]
    none = pd.DataFrame(columns=["ticker", "period_end", "announcement_date", "metric", "value"])
    tables = {
        "market": market,
        "constituents": pd.DataFrame(
            {"date": days[0], "index": "IDX", "ticker": list(bars), "weight": np.nan}
        ),
        "metadata": pd.DataFrame({"ticker": list(bars), "name": list(bars), "sector": "x"}),
        "corporate_actions": pd.DataFrame(actions, columns=["ticker", "date", "action", "value"]),
        "fundamentals": none.astype({"period_end": "datetime64[ns]",
                                     "announcement_date": "datetime64[ns]", "value": float}),
    }  # fmt: skip
    tables = {k: v.assign(source="x", log_ts=0) for k, v in tables.items()}
    params = Parameters(source="x", index="IDX", start=days[0].date(), end=days[-1].date())
    return panel_from_tables("hand-made", tables, params)


def _flat(close=100.0, n=60, **changes) -> pd.DataFrame:
    bars = pd.DataFrame({"open": close, "high": close + 0.5, "low": close - 0.5, "close": close},
                        index=range(n))  # fmt: skip
    for k, row in changes.items():
        for field, value in row.items():
            bars.loc[int(k[1:]), field] = value
    return bars


def _walk(panel, target=np.nan, stop=95.0, horizon=10, entry="close", t=10, direction=1):
    frame = pd.DataFrame({"ticker": ["AAA"], "direction": [direction], "stop": [stop],
                          "target": [target], "horizon": [horizon], "entry": [entry]})  # fmt: skip
    return setups.walk(panel, t, frame, setups.Tape.of(panel)).iloc[0]


def test_a_gap_through_the_stop_fills_at_the_open_and_can_lose_more_than_1r():
    panel = _panel({"AAA": _flat(d12={"open": 90.0, "low": 89.0, "close": 91.0})})
    out = _walk(panel)
    assert out["outcome"] == "stop_gap" and out["exit_price"] == 90.0
    assert out["r"] == pytest.approx(-2.0)  # entry 100, stop 95: one R is 5


def test_a_bar_that_reaches_both_stop_and_target_counts_as_the_loss():
    panel = _panel({"AAA": _flat(d13={"low": 94.0, "high": 106.0})})
    out = _walk(panel, target=105.0)
    assert out["outcome"] == "both_loss" and out["r"] == pytest.approx(-1.0)
    hit = _walk(_panel({"AAA": _flat(d13={"high": 106.0})}), target=105.0)
    assert hit["outcome"] == "target" and hit["r"] == pytest.approx(1.0) and hit["bars_held"] == 3
    gap_up = _walk(_panel({"AAA": _flat(d13={"open": 108.0, "high": 109.0})}), target=105.0)
    assert gap_up["outcome"] == "target_gap" and gap_up["r"] == pytest.approx(1.6)


def test_time_exit_short_side_and_next_open_entry():
    rising = _flat()
    rising["close"] = 100.0 + 0.1 * np.arange(60)
    rising["open"], rising["high"], rising["low"] = (
        rising["close"],
        rising["close"] + 0.05,
        rising["close"] - 0.05,
    )
    out = _walk(_panel({"AAA": rising}), stop=90.0, horizon=10)
    assert out["outcome"] == "time" and out["bars_held"] == 10
    assert out["r"] == pytest.approx(
        (rising["close"][20] - rising["close"][10]) / (rising["close"][10] - 90)
    )
    short = _walk(_panel({"AAA": rising}), stop=102.02, direction=-1, horizon=30)
    assert short["outcome"] == "stop" and short["r"] == pytest.approx(-1.0)
    at_open = _walk(_panel({"AAA": _flat(d11={"open": 101.0})}), stop=95.0, entry="next_open")
    assert at_open["entry_price"] == 101.0 and at_open["risk"] == pytest.approx(6.0)
    void = _walk(_panel({"AAA": _flat(d11={"open": 94.0, "low": 93.0})}), entry="next_open")
    assert void["outcome"] == "void" and np.isnan(void["r"])


def test_a_split_inside_the_walk_is_not_a_crash_and_a_delisting_exits_at_its_value():
    halved = _flat()
    halved.loc[15:, ["open", "high", "low", "close"]] /= 2  # a 2:1 split on day 15
    out = _walk(_panel({"AAA": halved}, splits=[("AAA", 15, 2.0)]), horizon=10)
    assert out["outcome"] == "time" and out["r"] == pytest.approx(0.0)
    gone = _flat(n=18)
    out = _walk(_panel({"AAA": gone, "BBB": _flat()}, delistings=[("AAA", 18, 120.0)]), horizon=20)
    assert out["outcome"] == "delisted" and out["r"] == pytest.approx(4.0)


def test_costs_in_r_follow_the_engine_cost_formula():
    panel = _panel({"AAA": _flat(d13={"high": 106.0})})
    params = Parameters(spread_bps=4.0, slippage_bps=2.0, commission_rate=0.0005,
                        commission_per_share=0.01)  # fmt: skip
    frame = pd.DataFrame({"ticker": ["AAA"], "direction": [1], "stop": [95.0], "target": [105.0],
                          "horizon": [10], "entry": ["close"], "t": [10]})  # fmt: skip
    out = setups.outcomes_for(panel, params, frame).iloc[0]
    cost = (100.0 + 105.0) * (2e-4 + 2e-4 + 5e-4) + 2 * 0.01
    assert out["r_net"] == pytest.approx(out["r"] - cost / 5.0)


def _trend_market(flip: bool = False, seed: int = 3):
    """40 tickers whose drift persists for the whole sample: yesterday's winners keep winning
    (or, flipped, reverse); 500 days."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-01-01", periods=500)
    bars = {}
    drift = rng.choice([-0.002, 0.002], size=40)
    for k in range(40):
        sign = np.where((np.arange(500) // 60) % 2 == 1, -1.0, 1.0) if flip else 1.0
        r = drift[k] * sign + 0.01 * rng.standard_normal(500)
        close = 50 * np.exp(np.cumsum(r))
        bars[f"T{k:02d}"] = pd.DataFrame({"open": close, "high": close * 1.003,
                                          "low": close * 0.997, "close": close})  # fmt: skip
    params = Parameters(source="x", index="IDX", start=days[80].date(), end=days[-1].date(),
                        lookback_days=80)  # fmt: skip
    return _panel(bars, days=days), params


RULE = """
import numpy as np, pandas as pd
GATES = {"trend_pct": 0.8}
def setups(view, params):
    r = view.returns(60).sum()
    close = view.market(view.universe)["close"]
    return pd.DataFrame({"direction": 1, "stop": close * 0.9, "horizon": 20, "entry": "close",
                         "trend_pct": FEATURE.rank(pct=True)})
"""


def _rule(tmp_path, feature: str):
    path = tmp_path / f"rule_{abs(hash(feature))}.py"
    path.write_text(RULE.replace("FEATURE", feature))
    return setups.SetupRule.load(path)


def test_a_planted_edge_is_found_and_a_random_rule_is_not(tmp_path):
    panel, params = _trend_market()
    trend = _rule(tmp_path, "r")
    rand = _rule(
        tmp_path,
        "pd.Series(np.random.default_rng(int(view.date.value % 2**32)).random(len(r)), index=r.index)",
    )
    found = setups.summarise(setups.run_study(panel, params, trend, 5), panel, params, None)
    q, c = (found["exits"]["horizon"][g]["net"] for g in ("qualified", "control"))
    assert q["expectancy_r"] > c["expectancy_r"] + 0.2 and q["t_stat"] > 3
    assert any("beat the control group" in f and "did not" not in f for f in found["findings"])
    noise = setups.summarise(setups.run_study(panel, params, rand, 5), panel, params, None)
    q, c = (noise["exits"]["horizon"][g]["net"] for g in ("qualified", "control"))
    assert abs(q["expectancy_r"] - c["expectancy_r"]) < 0.15
    ic = {r["feature"]: r for r in noise["feature_ics"]}["trend_pct"]
    assert abs(ic["mean_ic"]) < 0.1


def test_findings_flip_when_the_data_flips(tmp_path):
    rule = _rule(tmp_path, "r")
    panel, params = _trend_market(flip=True, seed=5)
    flipped = setups.summarise(setups.run_study(panel, params, rule, 5), panel, params, None)
    panel, params = _trend_market(seed=5)
    straight = setups.summarise(setups.run_study(panel, params, rule, 5), panel, params, None)
    assert any("Qualified setups beat" in f for f in straight["findings"])
    assert any("Qualified setups did not beat" in f for f in flipped["findings"])


def test_setups_see_nothing_after_their_day():
    """Changing every price after day D changes nothing about the setups of day D."""
    market = simulated.simulate(small_settings())
    day = pd.Timestamp("2012-06-29")
    later = market.prices["date"] > day
    bent = market.prices.copy()
    bent.loc[later, ["open", "high", "low", "close"]] *= 1.7
    rule = setups.SetupRule.load(REPO / "examples" / "setup_momentum_atr.py")
    frames = []
    for prices in (market.prices, bent):
        panel = panel_of(dataclasses.replace(market, prices=prices))
        params = Parameters(index=market.settings.index_name, start=day.date(), end=day.date())
        frames.append(setups.collect(panel, params, rule, 1))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert len(frames[0]) > 5


def test_the_command_writes_its_report_and_refuses_a_bad_file(tmp_path, small_store):
    import shutil

    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    write_parameters_file(tmp_path / "parameters.py")
    proc = run_script(tmp_path, "-m", "equity_backtest.research.setups", "--setups",
                      str(REPO / "examples" / "setup_momentum_atr.py"), "--every", "10",
                      "--book", "4")  # fmt: skip
    out = tmp_path / "results" / "setups_setup_momentum_atr"
    report = json.loads((out / "setups_report.json").read_text())
    assert report["setups"] > 100 and report["findings"] and report["ablation"]
    assert {r["cutoff"] for r in report["threshold_sweep"]["rows"]} == set(setups.SWEEP_CUTOFFS)
    page = (out / "setups_report.html").read_text()
    assert "<h2>Findings</h2>" in page
    for chart in ("R distribution", "expectancy by threshold", "time exits", "book"):
        assert f'alt="{chart}"' in page, chart
    assert report["book"]["exit_chosen_by"] == "the study"
    assert report["book"]["exit"] == setups.stats.recommended_exit(report)
    assert len(pd.read_csv(out / "outcomes.csv")) == report["setups"]
    # the book: one engine run with its archive and tear sheet, at most 4 positions, exits by
    # stop, take-profit or time exit, compared with the index in the findings
    book = report["book"]
    run = (
        Path(book["run_folder"])
        if Path(book["run_folder"]).is_absolute()
        else tmp_path / book["run_folder"]
    )
    assert (run / "tearsheet.html").is_file() and book["positions"] == 4
    positions = pd.read_feather(run / "positions.feather")
    assert positions.groupby("date").size().max() <= 4
    assert set(book["exits"]) - {"rebalance", "delisting"} <= {"stop", "take_profit", "time_exit"}
    assert book["exits"].get("stop", 0) + book["exits"].get("take_profit", 0) > 0
    assert any("capital-constrained book" in f for f in report["findings"])
    assert proc.stdout.strip() == "results/setups_setup_momentum_atr/setups_report.html"
    (tmp_path / "broken.py").write_text("def setups(view, params):\n    return 1 / 0\n")
    broken = run_script(tmp_path, "-m", "equity_backtest.research.setups", "--setups", "broken.py",
                        check=False)  # fmt: skip
    assert broken.returncode == 2 and "setups raised ZeroDivisionError on 20" in broken.stderr
    assert "Traceback" not in broken.stderr
    (tmp_path / "nothing.py").write_text("X = 1\n")
    bad = run_script(tmp_path, "-m", "equity_backtest.research.setups", "--setups", "nothing.py",
                     check=False)  # fmt: skip
    assert bad.returncode == 2 and "setups(view, params)" in bad.stderr
    assert "Traceback" not in bad.stderr
    for args, said in ((["--setups", "missing.py"], "setups file missing.py not found"),
                       (["--setups", "nothing.py", "--book", "0"], "--book >= 1 (got 0)"),
                       (["--setups", "nothing.py", "--book", "3", "--risk-per-trade", "nan"],
                        "--risk-per-trade in (0, 1] (got nan)")):  # fmt: skip
        proc = run_script(tmp_path, "-m", "equity_backtest.research.setups", *args, check=False)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr


def test_the_book_sizes_by_risk_caps_positions_and_exits_through_the_engine(tmp_path):
    """Risk per trade 1% with a stop 10% under the close is a 10% weight; at most 3 positions,
    one per ticker; every position leaves by its stop, its target or its time exit."""
    from equity_backtest.engine.loop import run_backtest

    panel, params = _trend_market()
    path = tmp_path / "rule.py"
    path.write_text(RULE.replace("FEATURE", "r").replace('"horizon": 20', '"horizon": 15'))
    book = setups.Book(path, positions=3, risk_per_trade=0.01, max_weight=0.2)
    params = params.replace(rebalance="daily", checkpoint_days=0)
    result = run_backtest(panel, params, book.weights)
    held = result.positions.groupby("date")["ticker"].nunique()
    assert held.max() == 3
    buys = result.trades[(result.trades["reason"] == "rebalance") & (result.trades["shares"] > 0)]
    assert len(buys) > 10
    first = result.target_weights.groupby("ticker", observed=True).head(1)
    assert np.allclose(first["weight"], 0.1)
    exits = set(result.trades["reason"]) - {"rebalance"}
    assert exits <= {"stop", "take_profit", "time_exit", "delisting"} and "time_exit" in exits


SLIDE = """
import numpy as np, pandas as pd
GATES = {"fall": MINIMUM}
def setups(view, params):
    close = view.history("close", 6, view.universe, split_adjusted=True)
    last = close.iloc[-1]
    fall = FALL
    return pd.DataFrame({"direction": -1, "stop": last * 1.5, "horizon": 5, "entry": "close",
                         "fall": fall}).dropna()
"""


def test_the_simulated_markets_planted_edge_is_found_and_a_random_rule_is_not(tmp_path):
    """The simulated market plants a slide of about 8% a day before a bankruptcy: shorting what
    fell 25% in five days earns far more than all setups; the same number of setups picked at
    random does not."""
    market = simulated.simulate(small_settings())
    assert (market.events["event"] == "bankruptcy").any()
    panel = panel_of(market)
    params = Parameters(index=market.settings.index_name, start=market.settings.start,
                        end=market.settings.end, lookback_days=10)  # fmt: skip
    rules = {
        "slide": ("0.25", "1 - last / close.iloc[0]"),
        "random": ("0.998", "pd.Series(np.random.default_rng(int(view.date.value % 2**32))"
                            ".random(len(last)), index=last.index)"),
    }  # fmt: skip
    results = {}
    for name, (minimum, fall) in rules.items():
        path = tmp_path / f"{name}.py"
        path.write_text(SLIDE.replace("MINIMUM", minimum).replace("FALL", fall))
        rule = setups.SetupRule.load(path)
        report = setups.summarise(setups.run_study(panel, params, rule, 1), panel, params, None)
        results[name] = {g: report["exits"]["horizon"][g]["net"] for g in ("qualified", "control")}
    slide, noise = results["slide"], results["random"]
    assert slide["qualified"]["count"] >= 15
    assert slide["qualified"]["expectancy_r"] > slide["control"]["expectancy_r"] + 0.5
    assert slide["qualified"]["t_stat"] > 5
    assert noise["qualified"]["count"] >= 20
    assert abs(noise["qualified"]["expectancy_r"] - noise["control"]["expectancy_r"]) < 0.1
    assert abs(noise["qualified"]["t_stat"]) < 3
