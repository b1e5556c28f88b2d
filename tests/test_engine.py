"""E1-E7: clock, orders, the broker's fills and costs, and the ledger's corporate actions."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from equity_backtest.config import Parameters
from equity_backtest.engine.broker import Broker
from equity_backtest.engine.clock import heartbeat_range, rebalance_days
from equity_backtest.engine.costs import CostModel
from equity_backtest.engine.ledger import Ledger
from equity_backtest.engine.orders import validate_weights, weights_to_orders
from equity_backtest.errors import BadInputError

N = 6
money = st.floats(0.0, 1e7, allow_nan=False)


def broker(fractional=True, cap=1.0, short=False, **costs) -> Broker:
    return Broker(CostModel(**costs), cap, fractional, short)


@settings(max_examples=300, deadline=None)
@given(
    orders=arrays(float, N, elements=st.floats(-5e4, 5e4, allow_nan=False)),
    price=arrays(float, N, elements=st.one_of(st.just(np.nan), st.floats(0.01, 1e3))),
    volume=arrays(float, N, elements=st.one_of(st.just(0.0), st.floats(0, 1e6))),
    held=arrays(float, N, elements=st.floats(-1e4, 1e4)),
    sigma=arrays(float, N, elements=st.floats(0, 0.1)),
    cash=money,
    floor=st.floats(-1e6, 0),
    slippage=st.floats(0, 100),
    spread=st.floats(0, 200),
    impact=st.floats(0, 2),
    rate=st.floats(0, 0.05),
    minimum=st.floats(0, 50),
    per_share=st.floats(0, 0.05),
    cap=st.floats(0.01, 1.0),
    fractional=st.booleans(),
    short=st.booleans(),
)
def test_fills_conserve_value_up_to_costs_and_keep_cash_above_its_floor(
    orders,
    price,
    volume,
    held,
    sigma,
    cash,
    floor,
    slippage,
    spread,
    impact,
    rate,
    minimum,
    per_share,
    cap,
    fractional,
    short,
):
    if not short:
        held = np.abs(held)
    b = broker(
        fractional,
        cap,
        short,
        slippage_bps=slippage,
        spread_bps=spread,
        impact_coef=impact,
        commission_rate=rate,
        commission_min=minimum,
        commission_per_share=per_share,
    )
    f = b.execute(orders, price, volume, held, cash, sigma, floor)
    ledger = Ledger(N, cash, held)
    mid = np.nan_to_num(price)
    before = ledger.cash + float(held @ mid)
    ledger.apply(0, f)
    after = ledger.cash + float(ledger.shares @ mid)
    # cash + holdings at the reference price change only by the costs charged
    assert after == pytest.approx(before - f.costs, rel=1e-9, abs=1e-6)
    assert f.costs >= 0
    assert ledger.cash >= min(cash, floor) - 1e-6 * max(1.0, abs(cash))
    assert np.all(np.abs(f.shares) <= cap * volume[f.idx] + 1e-9)  # participation cap, both sides
    if not short:
        assert np.all(ledger.shares >= -1e-9)  # never sells more than is held
    assert np.all(f.commission[f.shares == 0] == 0)  # no fill, no commission
    assert np.all((f.shares == 0) | np.isfinite(price[f.idx]))  # no price, no fill
    assert np.all(f.shares * orders[f.idx] >= 0)  # never the wrong way
    assert np.all(np.abs(f.shares) <= np.abs(orders[f.idx]) + 1e-9)  # never more than ordered
    if not fractional:
        # whole shares, unless the fill closes a fractional position entirely
        assert np.all((f.shares == np.trunc(f.shares)) | (f.shares == -held[f.idx]))


def test_participation_cap_binds_on_a_sell():
    f = broker(False, 0.1).execute(
        np.array([-1000.0]), np.array([10.0]), np.array([2000.0]), np.array([1000.0]), 0.0
    )
    assert f.shares.tolist() == [-200.0]


def test_buys_scale_down_to_available_cash_after_sells_settle():
    b = broker(False, commission_rate=0.01, commission_min=5.0)
    f = b.execute(
        np.array([-10.0, 1000.0]),
        np.array([100.0, 10.0]),
        np.array([1e6, 1e6]),
        np.array([10.0, 0.0]),
        500.0,
    )
    spent = f.shares[1] * f.price[1] + f.commission[1]
    proceeds = -f.shares[0] * f.price[0] - f.commission[0]
    assert f.shares[0] == -10 and 0 < f.shares[1] < 1000 and spent <= 500.0 + proceeds + 1e-9


def test_spread_slippage_and_square_root_impact_set_the_fill_price():
    b = broker(spread_bps=10, slippage_bps=2, impact_coef=0.5)
    f = b.execute(
        np.array([400.0, -100.0]),
        np.array([50.0, 50.0]),
        np.array([10_000.0, 10_000.0]),
        np.array([0.0, 100.0]),
        1e6,
        sigma=np.array([0.02, 0.02]),
    )
    buy_cost = 5e-4 + 2e-4 + 0.5 * 0.02 * np.sqrt(400 / 10_000)
    sell_cost = 5e-4 + 2e-4 + 0.5 * 0.02 * np.sqrt(100 / 10_000)
    assert f.price[0] == pytest.approx(50 * (1 + buy_cost)) and f.price[1] == pytest.approx(
        50 * (1 - sell_cost)
    )
    assert f.slippage.sum() == pytest.approx(400 * 50 * buy_cost + 100 * 50 * sell_cost)


def test_short_sale_and_borrowing_floor():
    b = broker(short=True)
    f = b.execute(np.array([-100.0]), np.array([10.0]), np.array([1e6]), np.array([0.0]), 0.0)
    assert f.shares.tolist() == [-100.0] and f.cash_flow == pytest.approx(1000.0)
    lev = broker()
    f = lev.execute(
        np.array([150.0]),
        np.array([10.0]),
        np.array([1e6]),
        np.array([0.0]),
        1000.0,
        cash_floor=-500.0,
    )
    assert f.shares[0] == pytest.approx(150.0)  # 1,500 bought with 1,000 cash and 500 borrowed
    f = lev.execute(np.array([150.0]), np.array([10.0]), np.array([1e6]), np.array([0.0]), 1000.0)
    assert f.shares[0] == pytest.approx(100.0)  # without borrowing, what the cash buys


def test_commission_rules():
    c = CostModel(commission_rate=0.001, commission_min=10.0, commission_per_share=0.01)
    fee = c.commission(np.array([0.0, 100.0, 100_000.0, 1.0]), np.array([0.0, 1000.0, 1e7, 5.0]))
    assert fee.tolist() == [
        0.0,
        10.0,
        1e4 + 1e3,
        10.0,
    ]  # none for nothing; the minimum; rate + per share; the minimum even above the value


def test_split_changes_shares_not_value_and_dividend_is_cash():
    ledger = Ledger(2, 100.0, np.array([10.0, 5.0]))
    price_before, price_after = 60.0, 20.0
    value_before = ledger.cash + 10 * price_before
    ledger.split(3, np.array([0]), np.array([3.0]))
    assert ledger.shares[0] == 30 and ledger.cash + ledger.shares[0] * price_after == value_before
    ledger.dividend(4, np.array([1]), np.array([0.5]))
    assert ledger.cash == 102.5
    ledger.delist(5, np.array([1]), np.array([0.0]))  # bankruptcy with no recovery
    assert ledger.shares[1] == 0 and ledger.cash == 102.5
    trades = ledger.trades_table(pd.date_range("2020-01-01", periods=10), np.array(["A", "B"]))
    assert trades["reason"].tolist() == ["delisting"] and trades["shares"].tolist() == [-5.0]


def test_takeover_pays_the_deal_price():
    ledger = Ledger(1, 0.0, np.array([100.0]))
    assert ledger.delist(0, np.array([0]), np.array([42.5])) == 4250.0 and ledger.cash == 4250.0


def test_cash_ledger_rebuilds_the_balance():
    ledger = Ledger(2, 1000.0)
    f = broker(False, commission_min=1.0).execute(
        np.array([5.0, 3.0]), np.array([10.0, 20.0]), np.array([1e3, 1e3]), np.zeros(2), 1000.0
    )
    ledger.apply(1, f)
    ledger.dividend(2, np.array([0, 1]), np.array([1.0, 1.0]))
    tab = ledger.cash_table(pd.date_range("2020-01-01", periods=3), np.array(["A", "B"]))
    assert tab["balance"].iloc[-1] == pytest.approx(ledger.cash)
    assert (tab["balance"] >= 0).all()


def _p(**kw):
    return Parameters(**{"cash_buffer": 0.0, "no_trade_band": 0.0, **kw})


def test_weights_to_orders_band_whole_shares_and_closing():
    price = np.array([10.0, 10.0, 10.0])
    shares = np.array([50.0, 0.0, 20.0])
    # equity 700 + 300 cash = 1000
    orders = weights_to_orders(
        np.array([0.501, 0.333, 0.0]), shares, 300.0, price, _p(no_trade_band=0.01)
    )
    assert orders.tolist() == [
        0.0,
        33.0,
        -20.0,
    ]  # within band: untouched; floor to whole shares; close
    frac = weights_to_orders(
        np.array([0.5, 0.333, 0.0]), shares, 300.0, price, _p(fractional_shares=True)
    )
    assert frac[1] == pytest.approx(33.3)
    buffered = weights_to_orders(
        np.array([0.0, 1.0, 0.0]), np.zeros(3), 1000.0, price, _p(cash_buffer=0.1)
    )
    assert buffered[1] == 90.0
    small = weights_to_orders(
        np.array([0.5, 0.001, 0.0]), shares, 300.0, price, _p(min_trade_value=50.0)
    )
    assert small.tolist() == [0.0, 0.0, -20.0]  # tiny buy skipped, the close still trades


@pytest.mark.parametrize(
    "weights,match",
    [
        (pd.Series({"A": np.nan}), "finite"),
        (pd.Series({"A": -0.1}), "negative"),
        (pd.Series({"A": 1.5}), "above the allowed leverage"),
        (pd.Series({"A": 0.6, "B": 0.6}), "sum to 1.2"),
        (pd.Series({"A": 0.6, "B": -0.6}), "allow_short = True"),
        (
            pd.DataFrame({"weight": [0.5], "stop": [-1.0]}, index=["A"]),
            "a stop is a positive price",
        ),
        (pd.DataFrame({"w": [0.5]}, index=["A"]), "without a 'weight' column"),
        (pd.Series({"ZZZ": 0.1}), "not in the universe"),
        (pd.Series({"C": 0.1}), "not in the universe"),
        (pd.Series({"D": 0.1}), "no price"),
        ([0.1, 0.2], "return a pandas Series"),
    ],
)
def test_invalid_weights_are_named(weights, match):
    with pytest.raises(BadInputError, match=match) as err:
        validate_weights(
            weights,
            pd.Timestamp("2020-03-02"),
            np.array(["A", "B", "C", "D"]),
            np.array([True, True, False, True]),
            np.array([True, True, True, False]),
            1.0,
            "algo.py",
        )
    assert "algo.py" in str(err.value) and "2020-03-02" in str(err.value)


def test_valid_weights_become_a_dense_vector():
    args = (
        pd.Timestamp("2020-03-02"),
        np.array(["A", "B", "C"]),
        np.array([True] * 3),
        np.array([True] * 3),
        1.5,
        "x",
    )
    w, stops = validate_weights(pd.Series({"B": 0.0, "A": 0.25}), *args)
    assert w.tolist() == [0.25, 0.0, 0.0] and np.isnan(stops).all()
    frame = pd.DataFrame(
        {"weight": [0.5, -0.5, 0.5], "stop": [9.0, 12.0, np.nan]}, index=["A", "B", "C"]
    )
    w, stops = validate_weights(frame, *args, allow_short=True)
    assert (
        w.tolist() == [0.5, -0.5, 0.5] and stops[:2].tolist() == [9.0, 12.0] and np.isnan(stops[2])
    )


def test_clock_window_inclusive_and_rebalance_schedules():
    dates = pd.bdate_range("2020-01-01", "2020-12-31")
    t0, t1 = heartbeat_range(dates, "2020-01-04", "2020-06-30")
    assert dates[t0] == pd.Timestamp("2020-01-06") and dates[t1] == pd.Timestamp("2020-06-30")
    monthly = rebalance_days(dates, t0, t1, "monthly")
    assert [d.strftime("%m-%d") for d in dates[monthly]] == [
        "01-06",
        "02-03",
        "03-02",
        "04-01",
        "05-01",
        "06-01",
    ]
    assert rebalance_days(dates, t0, t1, "never").sum() == 1
    assert not rebalance_days(dates, t0, t1, "daily")[t1]  # nothing could fill after the last day
    assert rebalance_days(dates, t0, t1, 5).sum() == len(range(t0, t1, 5))
    assert rebalance_days(dates, t0, t1, "quarterly").sum() == 2
    with pytest.raises(BadInputError, match="no trading days"):
        heartbeat_range(dates, "2021-01-01", "2021-02-01")


def test_orders_are_self_financing_when_the_band_keeps_an_overweight_position():
    price = np.array([10.0, 10.0])
    shares = np.array([60.0, 0.0])  # 600 of 1,000 equity: 60% against a 50% target, inside the band
    orders = weights_to_orders(np.array([0.5, 0.5]), shares, 400.0, price, _p(no_trade_band=0.15))
    assert orders[0] == 0.0  # kept
    assert orders[1] == 40.0  # 400 of cash buys 40 shares, not the 50 the target asks for
    assert float(orders @ price) <= 400.0
