"""The broker's fills and the order sizing, held bit for bit to their rules written out plainly
here (each rule one numpy step, every fee computed afresh), and the loop's E11 checks seen to
stop a run whose fills do not conserve value or take cash below its floor. The engine computes
some sums once and skips terms that add nothing; none of that may change a bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from equity_backtest.config import Parameters
from equity_backtest.engine import broker as broker_module
from equity_backtest.engine.broker import Broker, Fills
from equity_backtest.engine.costs import CostModel
from equity_backtest.engine.loop import InvariantError, run_backtest
from equity_backtest.engine.orders import weights_to_orders
from tests.test_engine_features import FLAT, hold, tiny_panel

N = 6


def plain_commission(c: CostModel, shares, notional):
    fee = np.maximum(
        c.commission_min,
        c.commission_rate * np.abs(notional) + c.commission_per_share * np.abs(shares),
    )
    return np.where(np.abs(shares) > 0, fee, 0.0)


def plain_execute(b: Broker, orders, price, volume, held, cash, sigma, floor):
    """Broker's rules (its module docstring), each step as written there."""
    c = b.costs
    idx = np.flatnonzero(orders)
    px, vol, want, sig = price[idx], volume[idx], orders[idx], sigma[idx]
    unknown = np.isnan(vol)
    ok = np.isfinite(px) & (px > 0) & (unknown | (vol > 0))
    cap = np.where(
        ok, np.where(unknown, np.inf, b.volume_cap * np.where(ok & ~unknown, vol, 0.0)), 0.0
    )
    q = np.clip(want, -cap, cap)
    if not b.allow_short:
        q = np.maximum(q, -np.maximum(held[idx], 0.0))
    if not b.fractional:
        q = np.where(q == -held[idx], q, np.trunc(q))
    px = np.where(ok, px, 0.0)
    fixed = c.spread_bps * 0.5e-4 + c.slippage_bps * 1e-4

    def fill_price(q):
        if c.impact_coef > 0:
            traded = vol > 0
            part = np.where(traded, np.abs(q) / np.where(traded, vol, 1.0), 0.0)
            cost = fixed + c.impact_coef * np.nan_to_num(sig) * np.sqrt(part)
        else:
            cost = np.full(len(q), fixed)
        return px * (1.0 + np.sign(q) * cost)

    sells = q < 0
    fp = fill_price(q)
    fee = plain_commission(c, np.where(sells, q, 0.0), np.where(sells, q * fp, 0.0))
    net = np.where(sells, -q * fp - fee, 0.0)
    if cash + net.sum() < floor:
        q = np.where(net < 0, 0.0, q)
        net = np.where(q < 0, net, 0.0)
        fp = fill_price(q)
    available = max(cash + float(net.sum()) - floor, 0.0)
    prev_need = np.inf
    for step in range(int((q > 0).sum()) + 50):
        buys = q > 0
        if not buys.any():
            break
        if step:
            fp = fill_price(q)
        fee = plain_commission(c, np.where(buys, q, 0.0), np.where(buys, q * fp, 0.0))
        need = float((q[buys] * fp[buys]).sum() + fee[buys].sum())
        if need <= available * (1 + 1e-12):
            break
        if available > 0 and need < 0.999 * prev_need:
            q = np.where(buys, q * (available / need) * (1.0 - 1e-9), q)
            if not b.fractional:
                q = np.where(buys, np.floor(q), q)
        else:
            value = np.where(buys, q * fp, np.inf)
            q = np.where(np.arange(len(q)) == np.argmin(value), 0.0, q)
        prev_need = need
    else:
        q = np.where(q > 0, 0.0, q)
    fp = fill_price(q)
    return idx, q, fp, px, plain_commission(c, q, q * fp), np.abs(q * (fp - px))


def bits(a) -> bytes:
    return np.asarray(a, dtype=float).tobytes()


@settings(max_examples=400, deadline=None)
@given(
    orders=arrays(float, N, elements=st.one_of(st.just(0.0), st.floats(-5e4, 5e4))),
    price=arrays(float, N, elements=st.one_of(st.just(np.nan), st.just(0.0), st.floats(0.01, 1e3))),
    volume=arrays(float, N, elements=st.one_of(st.just(np.nan), st.just(0.0), st.floats(0, 1e6))),
    held=arrays(float, N, elements=st.floats(-1e4, 1e4)),
    sigma=arrays(float, N, elements=st.one_of(st.just(np.nan), st.floats(0, 0.1))),
    cash=st.floats(0.0, 1e6),
    floor=st.floats(-1e6, 0),
    costs=st.fixed_dictionaries(
        {
            "slippage_bps": st.sampled_from([0.0, 5.0]),
            "spread_bps": st.sampled_from([0.0, 10.0]),
            "impact_coef": st.sampled_from([0.0, 0.5]),
            "commission_rate": st.sampled_from([0.0, 0.001, 0.05]),
            "commission_min": st.sampled_from([0.0, 1.0, 500.0]),
            "commission_per_share": st.sampled_from([0.0, 0.01]),
        }
    ),
    cap=st.sampled_from([0.01, 0.1, 1.0]),
    fractional=st.booleans(),
    short=st.booleans(),
)
def test_the_brokers_fills_are_its_rules_written_plainly_bit_for_bit(
    orders, price, volume, held, sigma, cash, floor, costs, cap, fractional, short
):
    b = Broker(CostModel(**costs), cap, fractional, short)
    if not short:
        held = np.abs(held)
    got = b.execute(orders, price, volume, held, cash, sigma, floor)
    want = plain_execute(b, orders, price, volume, held, cash, sigma, floor)
    assert got.idx.tolist() == want[0].tolist()
    for name, a, w in zip(
        ["shares", "price", "mid", "commission", "slippage"],
        list(vars(got).values())[1:],
        want[1:],
        strict=True,
    ):
        assert bits(a) == bits(w), name


def plain_orders(target, shares, cash, price, p: Parameters):
    """weights_to_orders' rules (orders module docstring), each step as written there."""
    px = np.where(np.isfinite(price), price, 0.0)
    value = shares * px
    equity = cash + value.sum()
    if equity <= 0:
        return np.zeros_like(shares)
    current = value / equity
    with np.errstate(divide="ignore", invalid="ignore"):
        target_shares = np.where(px > 0, target * equity * (1.0 - p.cash_buffer) / px, 0.0)
    if not p.fractional_shares:
        target_shares = np.trunc(target_shares)
    orders = target_shares - shares
    keep = (np.abs(target - current) < p.no_trade_band) & (target != 0) & (shares != 0)
    closing = (target == 0) & (shares != 0)
    small = (np.abs(orders) * px < p.min_trade_value) & ~closing
    orders[keep | small | (px <= 0)] = 0.0
    orders[closing] = -shares[closing]
    room = cash + (p.max_leverage - 1.0) * max(equity, 0.0)
    buys = orders > 0
    need_buys = float(orders[buys] @ px[buys])
    need = need_buys + float(orders[~buys] @ px[~buys])
    if need > room and need_buys > 0:
        orders[buys] *= max(room - (need - need_buys), 0.0) / need_buys
        if not p.fractional_shares:
            orders[buys] = np.floor(orders[buys])
    return orders


@settings(max_examples=400, deadline=None)
@given(
    target=arrays(float, N, elements=st.one_of(st.just(0.0), st.floats(-0.5, 0.5))),
    shares=arrays(float, N, elements=st.one_of(st.just(0.0), st.floats(-1e3, 1e3))),
    price=arrays(float, N, elements=st.one_of(st.just(np.nan), st.just(0.0), st.floats(0.01, 1e3))),
    cash=st.floats(-1e5, 1e6),
    band=st.sampled_from([0.0, 0.002, 0.05]),
    smallest=st.sampled_from([0.0, 100.0]),
    buffer=st.sampled_from([0.0, 0.01]),
    fractional=st.booleans(),
    leverage=st.sampled_from([1.0, 1.5]),
)
def test_order_sizing_is_its_rules_written_plainly_bit_for_bit(
    target, shares, price, cash, band, smallest, buffer, fractional, leverage
):
    p = Parameters(
        no_trade_band=band, min_trade_value=smallest, cash_buffer=buffer,
        fractional_shares=fractional, max_leverage=leverage, allow_short=True,
    )  # fmt: skip
    got = weights_to_orders(target, shares, cash, price, p)
    assert bits(got) == bits(plain_orders(target, shares.copy(), cash, price, p))


def one_bar_run(monkeypatch, change):
    """A position bought on the first fill of a tiny run, its fills changed by `change`."""
    execute = broker_module.Broker.execute

    def changed(self, *args, **kwargs) -> Fills:
        return change(execute(self, *args, **kwargs))

    monkeypatch.setattr(broker_module.Broker, "execute", changed)
    panel, params = tiny_panel({"A": FLAT}, commission_rate=0.001, spread_bps=10.0)
    return run_backtest(panel, params, hold(0.5))


def test_fills_that_lose_their_price_cost_stop_the_run_as_not_conserving_value(monkeypatch):
    def lost(f: Fills) -> Fills:
        return Fills(f.idx, f.shares, f.price, f.mid, f.commission, np.zeros_like(f.slippage))

    with pytest.raises(InvariantError, match="value not conserved by fills on"):
        one_bar_run(monkeypatch, lost)


def test_fills_that_spend_more_than_the_cash_stop_the_run_at_the_floor(monkeypatch):
    def tripled(f: Fills) -> Fills:  # (three times the shares and costs: still conserved)
        return Fills(f.idx, 3 * f.shares, f.price, f.mid, 3 * f.commission, 3 * f.slippage)

    with pytest.raises(InvariantError, match="cash went below its floor"):
        one_bar_run(monkeypatch, tripled)


def test_unchanged_fills_run_to_the_end(monkeypatch):
    result = one_bar_run(monkeypatch, lambda f: f)
    assert result.status == "completed" and len(result.trades) == 1
