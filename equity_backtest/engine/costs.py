"""Transaction costs (E5): spread/slippage on the fill price and commission per trade."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Fixed slippage in basis points (half-spread included) and commission rate + minimum + per share.

    The commission of a trade is max(minimum, rate x value + per_share x shares), as a broker
    charges it (a tiny trade still pays the minimum), and zero when nothing fills.
    """

    slippage_bps: float = 0.0
    commission_rate: float = 0.0
    commission_min: float = 0.0
    commission_per_share: float = 0.0

    @property
    def slip(self) -> float:
        return self.slippage_bps * 1e-4

    def commission(self, shares: np.ndarray, notional: np.ndarray) -> np.ndarray:
        qty = np.abs(shares)
        value = np.abs(notional)
        fee = np.maximum(
            self.commission_min, self.commission_rate * value + self.commission_per_share * qty
        )
        return np.where(qty > 0, fee, 0.0)
