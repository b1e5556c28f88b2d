"""Transaction costs (E5): what a fill pays beyond the reference price, and commission.

Price costs, as a fraction of the reference price (the open or close), paid on the way in and on
the way out:
    half the quoted spread (spread_bps / 2)
  + fixed slippage (slippage_bps)
  + square-root market impact: impact_coef x daily volatility x sqrt(shares / day's volume)
Buys pay price x (1 + that fraction), sells receive price x (1 - that fraction).

Commission per trade: max(commission_min, commission_rate x value + commission_per_share x shares),
as a broker charges it (a tiny trade still pays the minimum), and zero when nothing fills.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class CostModel:
    slippage_bps: float = 0.0
    commission_rate: float = 0.0
    commission_min: float = 0.0
    commission_per_share: float = 0.0
    spread_bps: float = 0.0
    impact_coef: float = 0.0

    def price_cost(
        self, shares: np.ndarray, day_volume: np.ndarray, sigma: np.ndarray | None
    ) -> np.ndarray:
        """Fraction of the reference price each fill pays (buys) or gives up (sells)."""
        return self.pricer(day_volume, sigma)(shares)

    def pricer(
        self, day_volume: np.ndarray, sigma: np.ndarray | None
    ) -> Callable[[np.ndarray], np.ndarray]:
        """price_cost for one day's volume and volatility, as a function of the shares alone:
        the broker prices several candidate fills of one day, and what does not depend on the
        shares is worked out once."""
        fixed = self.spread_bps * 0.5e-4 + self.slippage_bps * 1e-4
        if not (self.impact_coef > 0 and sigma is not None):
            return lambda shares: np.full(len(shares), fixed)
        scale = self.impact_coef * np.nan_to_num(sigma)
        traded = day_volume > 0  # participation is 0 where the day's volume is 0 or unknown
        volume = np.where(traded, day_volume, 1.0)
        return lambda shares: (
            fixed + scale * np.sqrt(np.where(traded, np.abs(shares) / volume, 0.0))
        )

    def commission(self, shares: np.ndarray, notional: np.ndarray) -> np.ndarray:
        qty = np.abs(shares)
        fee = self.commission_rate * np.abs(notional)
        if self.commission_per_share:  # (+ 0 x shares would add nothing to a finite fee)
            fee = fee + self.commission_per_share * qty
        return np.where(qty > 0, np.maximum(self.commission_min, fee), 0.0)
