"""The simulated broker (E5, E6): fills orders against one day's prices and volume.

Rules, in order:
- a ticker with no price or zero volume that day does not fill;
- each fill is capped at `volume_cap` x the day's volume, buys and sells alike (when a vendor gives
  no volume at all, there is no cap);
- without shorting, sells never exceed the position; sells settle first, and a sale whose
  commission exceeds its proceeds is skipped when the cash cannot pay for it;
- buys are then scaled down together so that their cost plus commission keeps cash at or above
  `cash_floor` (0 without leverage; minus the allowed borrowing with it).
Only the non-zero orders are touched, so a day with few orders costs little.
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
    price: np.ndarray  # fill price, price costs included
    mid: np.ndarray  # reference price (the open or close before price costs)
    commission: np.ndarray
    slippage: np.ndarray  # cash cost of spread, slippage and impact

    @property
    def cash_flow(self) -> float:
        """Change in cash: sale proceeds less purchase costs less commissions."""
        return float(-(self.shares * self.price).sum() - self.commission.sum())

    @property
    def costs(self) -> float:
        return float(self.commission.sum() + self.slippage.sum())


@dataclasses.dataclass(frozen=True)
class Broker:
    costs: CostModel
    volume_cap: float
    fractional: bool
    allow_short: bool = False

    def execute(
        self,
        orders: np.ndarray,
        price: np.ndarray,
        volume: np.ndarray,
        held: np.ndarray,
        cash: float,
        sigma: np.ndarray | None = None,
        cash_floor: float = 0.0,
    ) -> Fills:
        """Fill what can be filled of `orders` (signed shares, length N) on one day."""
        idx = np.flatnonzero(orders)
        px, vol, want = price[idx], volume[idx], orders[idx]
        sig = None if sigma is None else sigma[idx]
        # no price or zero volume: no fill; unknown (missing) volume: no participation cap
        unknown = np.isnan(vol)
        ok = np.isfinite(px) & (px > 0) & (unknown | (vol > 0))
        cap = np.where(
            ok, np.where(unknown, np.inf, self.volume_cap * np.where(ok & ~unknown, vol, 0.0)), 0.0
        )
        q = np.minimum(np.maximum(want, -cap), cap)  # (np.clip, without its wrapper's cost)
        if not self.allow_short:
            q = np.maximum(q, -np.maximum(held[idx], 0.0))  # never sell more than is held
        if (
            not self.fractional
        ):  # whole shares, except that a whole position (fraction and all) may close
            q = np.where(q == -held[idx], q, np.trunc(q))
        px = np.where(ok, px, 0.0)
        price_cost = self.costs.pricer(vol, sig)

        def fill_price(q):
            return px * (1.0 + np.sign(q) * price_cost(q))

        sells = q < 0
        fp = fill_price(q)
        fee = self.costs.commission(q, q * fp)  # (elementwise: each fill's alone)
        net = np.where(sells, -q * fp - fee, 0.0)
        if cash + net.sum() < cash_floor:  # sales that cost more than they bring cannot be paid for
            q = np.where(net < 0, 0.0, q)
            net = np.where(q < 0, net, 0.0)
            fp = fill_price(q)
            fee = self.costs.commission(q, q * fp)
        available = max(cash + float(net.sum()) - cash_floor, 0.0)
        fitted = self._fit_buys(q, fill_price, available, fp, fee)
        if fitted is not q:  # (fill prices are elementwise: unchanged shares, unchanged prices)
            q, fp = fitted, fill_price(fitted)
            fee = self.costs.commission(q, q * fp)
        return Fills(idx, q, fp, px, fee, np.abs(q * (fp - px)))

    def _fit_buys(
        self, q: np.ndarray, fill_price, available: float, fp: np.ndarray, fee: np.ndarray
    ) -> np.ndarray:
        """Scale the buys in `q` down together until cost plus commission fits in `available`;
        `fp` is fill_price(q) and `fee` each of its fills' commission. Returns `q` itself when
        it fits as it is.

        Scaling stops helping when minimum commissions dominate; then the smallest buy is
        dropped. Ends after at most (number of buys + 50) steps with buys that fit (maybe none).
        """
        prev_need = np.inf
        buys = q > 0
        for step in range(int(np.count_nonzero(buys)) + 50):
            if step:  # (q changed below)
                buys = q > 0
                fp = fill_price(q)
                fee = self.costs.commission(q, q * fp)
            if not buys.any():
                break
            need = float((q[buys] * fp[buys]).sum() + fee[buys].sum())
            if need <= available * (1 + 1e-12):
                break
            if available > 0 and need < 0.999 * prev_need:
                q = np.where(buys, q * (available / need) * (1.0 - 1e-9), q)
                if not self.fractional:
                    q = np.where(buys, np.floor(q), q)
            else:  # fixed fees dominate: drop the smallest buy
                value = np.where(buys, q * fp, np.inf)
                q = np.where(np.arange(len(q)) == np.argmin(value), 0.0, q)
            prev_need = need
        else:
            q = np.where(q > 0, 0.0, q)
        return q
