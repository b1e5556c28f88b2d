"""E5, E6, stops: exact behaviour of the loop on a tiny hand-made market."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data.frequency import periodic_rate
from equity_backtest.data.panel import panel_from_tables
from equity_backtest.engine.loop import run_backtest


def daily_risk_free(annual: float) -> float:
    return periodic_rate(annual, 252)


DAYS = pd.bdate_range("2020-01-01", periods=12)


def tiny_panel(bars: dict[str, list[tuple]], actions=(), **kw):
    """bars: ticker -> [(open, high, low, close)] per day (volume 1e6). Both tickers are members."""
    rows = []
    for ticker, series in bars.items():
        for day, (o, h, lo, c) in zip(DAYS, series, strict=False):
            rows.append(("x", ticker, day, o, h, lo, c, 1e6, c * 1e6, 0))
    market = pd.DataFrame(
        rows,
        columns=[
            "source",
            "ticker",
            "date",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "market_cap",
            "log_ts",
        ],
    )
    cons = pd.DataFrame(
        [("x", "IDX", DAYS[0], t, 0.5, 0) for t in bars],
        columns=["source", "index", "date", "ticker", "weight", "log_ts"],
    )
    meta = pd.DataFrame(
        [("x", t, t, "Tech", 0) for t in bars],
        columns=["source", "ticker", "name", "sector", "log_ts"],
    )
    ca = pd.DataFrame(
        [("x", t, DAYS[d], a, v, 0) for t, d, a, v in actions],
        columns=["source", "ticker", "date", "action", "value", "log_ts"],
    )
    fund = pd.DataFrame(
        columns=["source", "ticker", "period_end", "announcement_date", "metric", "value", "log_ts"]
    )
    params = Parameters(
        **{
            "source": "x",
            "index": "IDX",
            "start": DAYS[0].date(),
            "end": DAYS[-1].date(),
            "sim_start": dt.date(2019, 1, 1),
            "sim_end": dt.date(2021, 1, 1),
            "rebalance": "never",
            "starting_cash": 10_000.0,
            "cash_buffer": 0.0,
            "no_trade_band": 0.0,
            "fractional_shares": True,
            "commission_rate": 0.0,
            "commission_min": 0.0,
            "slippage_bps": 0.0,
            "spread_bps": 0.0,
            "impact_coef": 0.0,
            "volume_cap": 1.0,
            "risk_free_rate": 0.0,
            **kw,
        }
    )
    tables = {
        "market": market,
        "constituents": cons,
        "metadata": meta,
        "corporate_actions": ca,
        "fundamentals": fund,
    }
    return panel_from_tables("tiny", tables, params), params


FLAT = [(100, 101, 99, 100)] * 12


def bars_with(day: int, bar: tuple, base=FLAT) -> list[tuple]:
    out = list(base)
    out[day] = bar
    return out


def hold(weight: float, stop: float | None = None, ticker: str = "A", **exits):
    def compute_weights(view, params):
        frame = pd.DataFrame({"weight": [weight]}, index=[ticker])
        if stop is not None:
            frame["stop"] = stop
        for column, value in exits.items():  # target, exit_after
            frame[column] = value
        return frame

    return compute_weights


def test_a_take_profit_fills_at_the_target_or_at_a_gap_open_and_a_split_moves_it():
    for bar, expected in (((101, 112, 100, 111), 110.0), ((115, 116, 114, 115), 115.0)):
        panel, params = tiny_panel({"A": bars_with(4, bar), "B": FLAT})
        result = run_backtest(panel, params, hold(1.0, stop=90.0, target=110.0))
        take = result.trades[result.trades["reason"] == "take_profit"]
        assert take["date"].tolist() == [DAYS[4]] and take["price"].tolist() == [expected]
        assert take["shares"].iloc[0] == pytest.approx(-100.0)
        assert result.positions[result.positions["date"] >= DAYS[4]].empty
    split = FLAT[:6] + [(50, 50.5, 49.5, 50)] * 6
    panel, params = tiny_panel({"A": bars_with(8, (51, 56, 50, 55), base=split), "B": FLAT},
                               actions=[("A", 6, "split", 2.0)])  # fmt: skip
    result = run_backtest(panel, params, hold(1.0, target=108.0))  # 54 after the split
    take = result.trades[result.trades["reason"] == "take_profit"]
    assert take["date"].tolist() == [DAYS[8]] and take["price"].tolist() == [54.0]


def test_a_bar_through_both_stop_and_target_is_the_stop():
    panel, params = tiny_panel({"A": bars_with(4, (100, 112, 85, 100)), "B": FLAT})
    result = run_backtest(panel, params, hold(1.0, stop=90.0, target=110.0))
    assert result.trades["reason"].tolist() == ["rebalance", "stop"]


def test_a_time_exit_closes_at_the_fill_n_bars_after_the_decision():
    for timing, price in (("open", 101.0), ("close", 102.0)):
        bars = [(101, 103, 99, 102)] * 12
        panel, params = tiny_panel({"A": bars, "B": FLAT}, fill_timing=timing)
        result = run_backtest(panel, params, hold(1.0, exit_after=4))
        trades = result.trades
        assert trades["reason"].tolist() == ["rebalance", "time_exit"]
        entry, exit_ = trades["date"].tolist()
        # decided on day 0, filled on day 1, closed at the fill 4 bars after the decision
        assert (DAYS.get_loc(entry), DAYS.get_loc(exit_)) == (1, 4)
        assert trades["price"].iloc[1] == price
    with pytest.raises(Exception, match="exit_after 2.5"):
        run_backtest(panel, params, hold(1.0, exit_after=2.5))


def test_closing_prices_fill_after_stops_and_a_stop_that_fires_keeps_the_new_entries_stops():
    """fill_timing = "close": stops come first, then the day's orders fill at the close. A stop
    firing for A on B's entry day must not wipe the stop B's order carries (it did: B then fell
    through its stop untouched)."""
    a = bars_with(4, (100, 101, 85, 88))  # A's stop at 90 fires on day 4
    b = bars_with(5, (99, 99, 85, 86))  # B, bought at day 4's close, falls through 90 on day 5
    panel, params = tiny_panel({"A": a, "B": b}, fill_timing="close", rebalance=3)

    def compute_weights(view, params):
        names = ["A"] if view.date < DAYS[3] else ["A", "B"]
        return pd.DataFrame({"weight": 0.4, "stop": 90.0}, index=names)

    result = run_backtest(panel, params, compute_weights)
    stops = result.trades[result.trades["reason"] == "stop"]
    assert stops[["ticker", "date", "price"]].values.tolist() == [
        ["A", DAYS[4], 90.0],
        ["B", DAYS[5], 90.0],
    ]


def test_a_long_stop_fills_at_the_stop_when_the_low_reaches_it():
    panel, params = tiny_panel({"A": bars_with(4, (98, 99, 85, 88)), "B": FLAT})
    result = run_backtest(panel, params, hold(1.0, stop=90.0))
    stop = result.trades[result.trades["reason"] == "stop"]
    assert stop["date"].tolist() == [DAYS[4]] and stop["price"].tolist() == [90.0]
    assert stop["shares"].iloc[0] == pytest.approx(-100.0)
    assert result.runtime_log["stops"].sum() == 1
    assert result.positions[result.positions["date"] >= DAYS[4]].empty  # out, and stays out


def test_a_gap_through_the_stop_fills_at_the_open_so_the_loss_exceeds_the_stop_distance():
    panel, params = tiny_panel({"A": bars_with(4, (80, 82, 78, 81)), "B": FLAT})
    result = run_backtest(panel, params, hold(1.0, stop=90.0))
    stop = result.trades[result.trades["reason"] == "stop"]
    assert stop["price"].tolist() == [80.0]
    assert result.runtime_log["value"].iloc[-1] == pytest.approx(
        8_000.0
    )  # not the 9,000 of the stop


def test_a_short_stop_covers_at_the_stop_or_the_gap_open():
    for bar, expected in (((102, 115, 101, 112), 110.0), ((120, 125, 119, 121), 120.0)):
        panel, params = tiny_panel({"A": bars_with(4, bar), "B": FLAT}, allow_short=True)
        result = run_backtest(panel, params, hold(-0.5, stop=110.0))
        stop = result.trades[result.trades["reason"] == "stop"]
        assert stop["price"].tolist() == [expected] and stop["shares"].iloc[0] == pytest.approx(
            50.0
        )


def test_an_untouched_stop_does_nothing_and_a_split_moves_it():
    panel, params = tiny_panel(
        {
            "A": bars_with(6, (50, 50.5, 49, 50), base=FLAT[:6] + [(50, 50.5, 49.5, 50)] * 6),
            "B": FLAT,
        },
        actions=[("A", 6, "split", 2.0)],
    )
    result = run_backtest(panel, params, hold(1.0, stop=90.0))
    assert (result.trades["reason"] == "stop").sum() == 0  # 49 > 90 / 2
    assert result.positions[result.positions["date"] == DAYS[-1]]["shares"].tolist() == [200.0]


def test_cash_earns_the_risk_free_rate_when_enabled():
    panel, params = tiny_panel({"A": FLAT, "B": FLAT}, cash_interest=True, risk_free_rate=0.05)
    result = run_backtest(panel, params, lambda v, p: None)
    n = len(result.runtime_log)
    assert result.runtime_log["value"].iloc[-1] == pytest.approx(
        10_000 * (1 + daily_risk_free(0.05)) ** n
    )
    assert (result.cash_ledger["kind"] == "interest").sum() == n
    panel, params = tiny_panel({"A": FLAT, "B": FLAT}, risk_free_rate=0.05)
    off = run_backtest(panel, params, lambda v, p: None)
    assert off.runtime_log["value"].iloc[-1] == 10_000


def test_leverage_borrows_cash_and_pays_for_it():
    panel, params = tiny_panel(
        {"A": FLAT, "B": FLAT}, max_leverage=1.5, risk_free_rate=0.02, borrow_spread=0.03
    )
    result = run_backtest(panel, params, hold(1.5))
    rl = result.runtime_log
    assert rl["cash"].iloc[1] == pytest.approx(
        -5_000.0 - 5_000.0 * (daily_risk_free(0.05)), rel=1e-6
    )
    assert (rl["interest"].iloc[1:] < 0).all()
    with pytest.raises(Exception, match="allowed leverage 1.5"):
        run_backtest(panel, params, hold(1.6))


def test_a_short_position_pays_dividends_and_fees_and_profits_from_a_bankruptcy():
    bars = {"A": FLAT[:8] + [(100, 100, 100, 100)] * 4, "B": FLAT}
    actions = [("A", 3, "dividend", 2.0), ("A", 8, "delisting", 0.0)]
    panel, params = tiny_panel(bars, actions, allow_short=True, short_fee_rate=0.0)
    result = run_backtest(panel, params, hold(-0.5))
    ledger = result.cash_ledger
    assert ledger[ledger["kind"] == "dividend"]["amount"].tolist() == [
        -100.0
    ]  # 50 shares short x 2.0
    assert result.runtime_log["value"].iloc[-1] == pytest.approx(
        10_000 - 100 + 5_000
    )  # kept the proceeds
    panel, params = tiny_panel({"A": FLAT, "B": FLAT}, allow_short=True, short_fee_rate=0.05)
    result = run_backtest(panel, params, hold(-0.5))
    fees = result.cash_ledger[result.cash_ledger["kind"] == "short_fee"]["amount"]
    assert len(fees) == len(result.runtime_log) - 1 and fees.iloc[0] == pytest.approx(
        -5_000 * daily_risk_free(0.05)
    )


def test_square_root_impact_costs_more_for_bigger_orders():
    bars = {"A": [(100 + (i % 3), 103, 98, 100 + ((i * 7) % 5)) for i in range(12)], "B": FLAT}
    costs = []
    for cash in (10_000.0, 1_000_000.0):
        panel, params = tiny_panel(
            bars, impact_coef=1.0, impact_vol_days=5, starting_cash=cash, start=DAYS[6].date()
        )  # a week of returns to measure volatility
        panel.fields["volume"][:] = 20_000.0
        result = run_backtest(panel, params, hold(1.0))
        t = result.trades.iloc[0]
        costs.append(t["slippage"] / abs(t["value"]))
    assert 0 < costs[0] < costs[1]
    assert costs[1] / costs[0] == pytest.approx(
        np.sqrt(100), rel=0.05
    )  # square root of the size ratio


def test_a_run_that_never_invests_says_so():
    """Cap weights on data without market caps ask for nothing: the run says it stayed in cash,
    and names the likely cause when the data has no market caps."""
    from equity_backtest.run.runner import idle_note

    panel, params = tiny_panel({"A": FLAT, "B": FLAT}, rebalance="monthly")
    nothing = run_backtest(panel, params, lambda view, params: pd.Series(dtype=float))
    (note,) = idle_note(nothing, panel)
    assert "asked for no position on any of the 1 rebalance days" in note
    assert "no market caps" not in note  # this data has them
    panel.fields["market_cap"][:] = np.nan
    assert "no market caps" in idle_note(nothing, panel)[0]
    assert idle_note(run_backtest(panel, params, hold(1.0)), panel) == []
    # close-only data: targets are set, but orders for the next open never fill
    panel.fields["open"][:] = np.nan
    (note,) = idle_note(run_backtest(panel, params, hold(1.0)), panel)
    assert "no order filled on any of the 1 rebalance days" in note
    assert 'fill_timing = "close"' in note
    at_close = params.replace(fill_timing="close")
    assert idle_note(run_backtest(panel, at_close, hold(1.0)), panel, "close") == []
