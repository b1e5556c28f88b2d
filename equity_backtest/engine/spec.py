"""What the engine reads from the settings, built once per run: a small frozen spec instead of the
whole Parameters object (which only the user's compute_weights still receives)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

from .broker import Broker
from .costs import CostModel
from .orders import OrderRules

if TYPE_CHECKING:
    from ..config import Parameters


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """The window and schedule, fills, financing, costs and order sizing of one backtest."""

    start: dt.date
    end: dt.date
    rebalance: str | int
    lookback_days: int
    bar_frequency: str  # "auto" is resolved against the panel's dates by the loop
    fill_timing: str  # "open" or "close"
    carry_unfilled: bool  # an order the volume cap cut short is carried to the next day
    volume_cap: float
    starting_cash: float
    allow_short: bool
    cash_interest: bool
    risk_free_rate: float
    borrow_spread: float
    short_fee_rate: float
    impact_vol_days: int
    costs: CostModel
    orders: OrderRules  # cash buffer, no-trade band, whole shares, leverage limit

    @classmethod
    def of(cls, params: Parameters) -> EngineSpec:
        return cls(
            start=params.start,
            end=params.end,
            rebalance=params.rebalance,
            lookback_days=params.lookback_days,
            bar_frequency=params.bar_frequency,
            fill_timing=params.fill_timing,
            carry_unfilled=params.unfilled == "carry",
            volume_cap=params.volume_cap,
            starting_cash=params.starting_cash,
            allow_short=params.allow_short,
            cash_interest=params.cash_interest,
            risk_free_rate=params.risk_free_rate,
            borrow_spread=params.borrow_spread,
            short_fee_rate=params.short_fee_rate,
            impact_vol_days=params.impact_vol_days,
            costs=CostModel(
                params.slippage_bps,
                params.commission_rate,
                params.commission_min,
                params.commission_per_share,
                params.spread_bps,
                params.impact_coef,
            ),
            orders=OrderRules.of(params),
        )

    def broker(self) -> Broker:
        return Broker(self.costs, self.volume_cap, self.orders.fractional_shares, self.allow_short)
