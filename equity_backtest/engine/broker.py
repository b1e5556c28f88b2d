"""The simulated broker (E5, E6): fills orders against one day's prices and volume.

Rules, in order: a ticker with no price or no volume that day does not fill; each fill is capped
at `volume_cap` x the day's volume (buys and sells); sells never exceed the position (no shorting
in this version) and settle first (a sale whose commission exceeds its proceeds is skipped when
the cash cannot pay for it); buys are then scaled down together so that their cost plus
commission fits in the cash available. Buys pay price x (1 + slippage), sells receive
price x (1 - slippage). Only the orders that are non-zero are touched.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .costs import CostModel


@dataclasses.dataclass
class Fills:
    """Fills of one day for the tickers `idx` (positions in the panel)."""

    idx: np.ndarray
    shares: np.ndarray  # signed: + bought, - sold
    price: np.ndarray  # fill price, slippage included
    mid: np.ndarray  # reference price (the open or close before slippage)
    commission: np.ndarray
    slippage: np.ndarray  # cost of slippage in cash

    @property
    def cash_flow(self) -> float:
        """Change in cash: sale proceeds less purchase costs less commissions."""
        return float(-(self.shares * self.price).sum() - self.commission.sum())

    @property
    def costs(self) -> float:
        return float(self.commission.sum() + self.slippage.sum())


def execute(
    orders: np.ndarray,
    price: np.ndarray,
    volume: np.ndarray,
    held: np.ndarray,
    cash: float,
    costs: CostModel,
    volume_cap: float,
    fractional: bool,
) -> Fills:
    """Fill what can be filled of `orders` (shares, signed, length N) on one day."""
    idx = np.flatnonzero(orders)
    px = price[idx]
    vol = volume[idx]
    want = orders[idx]
    ok = np.isfinite(px) & (px > 0) & np.isfinite(vol) & (vol > 0)
    cap = np.where(ok, volume_cap * np.where(ok, vol, 0.0), 0.0)
    q = np.clip(want, -cap, cap)
    q = np.maximum(q, -held[idx])  # never sell more than is held
    if not fractional:
        q = np.trunc(q)
    px = np.where(ok, px, 0.0)
    slip = costs.slip
    fill_px = px * np.where(q > 0, 1.0 + slip, 1.0 - slip)

    sells = q < 0
    sell_fee = costs.commission(np.where(sells, q, 0.0), np.where(sells, q * fill_px, 0.0))
    net = np.where(sells, -q * fill_px - sell_fee, 0.0)
    if cash + net.sum() < 0:  # sales that cost more than they bring cannot be paid for
        q = np.where(net < 0, 0.0, q)
        sells = q < 0
        net = np.where(sells, net, 0.0)
    available = cash + float(net.sum())

    q = _fit_buys(q, fill_px, max(available, 0.0), costs, fractional)
    commission = costs.commission(q, q * fill_px)
    return Fills(idx, q, fill_px, px, commission, np.abs(q) * px * slip)


def _fit_buys(
    q: np.ndarray, fill_px: np.ndarray, available: float, costs: CostModel, fractional: bool
) -> np.ndarray:
    """Scale the buys in `q` down together until their cost plus commission fits in `available`.

    Scaling stops helping when minimum commissions dominate; then the smallest buy is dropped.
    Ends after at most (number of buys + 50) steps with a set of buys that fits (maybe none).
    """
    prev_need = np.inf
    for _ in range(int((q > 0).sum()) + 50):
        buys = q > 0
        if not buys.any():
            break
        fee = costs.commission(np.where(buys, q, 0.0), np.where(buys, q * fill_px, 0.0))
        need = float((q[buys] * fill_px[buys]).sum() + fee[buys].sum())
        if need <= available * (1 + 1e-12):
            break
        if available > 0 and need < 0.999 * prev_need:
            q = np.where(buys, q * (available / need) * (1.0 - 1e-9), q)
            if not fractional:
                q = np.where(buys, np.floor(q), q)
        else:  # fixed fees dominate: drop the smallest buy
            value = np.where(buys, q * fill_px, np.inf)
            q = np.where(np.arange(len(q)) == np.argmin(value), 0.0, q)
        prev_need = need
    else:
        q = np.where(q > 0, 0.0, q)
    return q
