"""The investor's rebalancing tool (P1-P3): today's buy and sell list for a theme.

    python -m equity_backtest.investor --theme magic_formula --stocks 20 --invest 10000
    python -m equity_backtest.investor --theme quality --stocks 15 --holdings my_holdings.csv
    python -m equity_backtest.investor serve          # the same in a web page (pip install -e ".[web]")

With the latest data in datasets/ it builds the theme's target portfolio of N stocks on the latest
close, sizes it to the holdings' value plus the amount to invest, and prices the orders with the
backtest's own broker and cost model (sells first, buys fitted to the cash, never below zero).
Fractional shares by default (--whole-shares to round down). Writes a CSV and prints a table.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Parameters
from ..data.holdings import where_is
from ..data.panel import Panel
from ..engine.loop import make_broker
from ..engine.strategy_loader import load_compute_weights, load_module
from ..engine.view import View
from ..errors import BadInputError, some
from ..research.themes import top_n_equal

MAX_AMOUNT = 1e12  # cash to invest: beyond any private investor's
MAX_VALUE = 1e13  # holdings plus cash: beyond any portfolio, so surely a mistake
STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"


@dataclasses.dataclass
class Plan:
    date: pd.Timestamp
    orders: pd.DataFrame  # per stock: current and target shares, trade, price, value, costs
    summary: dict


def theme_path(theme: str) -> Path:
    """A bundled theme's name (strategies/<name>.py) or a path to any algorithm file."""
    path = Path(theme)
    if path.suffix == ".py":
        return path
    bundled = STRATEGIES / f"{theme}.py"
    if not bundled.is_file():
        names = ", ".join(sorted(p.stem for p in STRATEGIES.glob("*.py")))
        raise BadInputError(f"unknown theme {theme!r}; choose one of: {names} (or give a .py file)")
    return bundled


def target_weights(view: View, params: Parameters, path: Path, n: int) -> pd.Series:
    """The theme's weights: its top n by score, equally weighted, when it has a score; otherwise
    whatever its compute_weights returns."""
    module = load_module(path)
    if hasattr(module, "score") and hasattr(module, "TOP_N"):
        return top_n_equal(module.score(view, params), n)
    weights = load_compute_weights(path)(view, params)
    return pd.Series(dtype=float) if weights is None else weights


def plan(
    panel: Panel,
    params: Parameters,
    theme: Path,
    n: int,
    invest: float,
    holdings: pd.Series | None = None,
) -> Plan:
    """Orders that take the holdings (plus `invest` in cash) to the theme's target on the latest day."""
    if not (math.isfinite(invest) and 0 <= invest <= MAX_AMOUNT):
        raise BadInputError(
            f"the amount to invest, {invest:g}, must be a number from 0 to {MAX_AMOUNT:,.0f}"
        )
    t = len(panel.dates) - 1
    shares = np.zeros(len(panel.tickers))
    if holdings is not None and len(holdings):
        pos = panel.labels.get_indexer(holdings.index)
        unknown = [
            tk
            for tk, i in zip(holdings.index, pos, strict=True)
            if i < 0 or not np.isfinite(panel.mark[t, i])
        ]
        if unknown:
            raise BadInputError(
                f"{where_is(holdings, unknown[0])}, field 'stock': {unknown[0]!r} has no price "
                f"in the data on {panel.dates[t]:%Y-%m-%d}"
                + (f" (nor have {some(unknown[1:])})" if len(unknown) > 1 else "")
                + "; check the ticker (or sell it outside this tool)"
            )
        shares[pos] = holdings.to_numpy()
    price = panel.mark[t]
    view = View(panel, t, shares, invest, params.lookback_days)
    weights = target_weights(view, params, theme, n)
    weights = weights[weights != 0]
    if weights.empty:
        raise BadInputError(
            f"the theme {theme.stem} picked no stocks on {panel.dates[t]:%Y-%m-%d}: the data it "
            "needs may be missing; bring the data up to date and try again"
        )
    capital = invest + float(np.nansum(shares * price))
    if not capital <= MAX_VALUE:
        raise BadInputError(
            f"the holdings and cash come to {capital:,.0f}, more than any portfolio holds (at most "
            f"{MAX_VALUE:,.0f}); check the shares column"
        )
    if capital <= 0:
        raise BadInputError(
            "nothing to invest: there are no holdings and the amount to invest is 0"
        )
    pos = panel.labels.get_indexer(weights.index)
    volume = np.full(len(shares), 1e18)  # a private investor's orders: no participation cap
    sigma = panel.volatility(params.impact_vol_days)[t] if params.impact_coef > 0 else None
    broker = make_broker(params)
    costs = 0.0
    for _ in range(
        10
    ):  # size the targets to the capital net of their own costs, so no buy is scaled
        target = np.zeros(len(panel.tickers))
        target[pos] = weights.to_numpy() * (capital - costs) * (1 - params.cash_buffer) / price[pos]
        if not params.fractional_shares:
            target = np.floor(target)
        orders = np.where(np.isfinite(target - shares), target - shares, 0.0)
        fills = broker.execute(orders, np.nan_to_num(price), volume, shares, invest, sigma)
        if (
            np.allclose(fills.shares, orders[fills.idx], rtol=1e-12, atol=1e-12)
            or fills.costs <= costs
        ):
            break
        costs = fills.costs * 1.0000001
    rows = []
    new_shares = shares.copy()
    new_shares[fills.idx] += fills.shares
    involved = np.flatnonzero((shares != 0) | (target != 0))
    cost = dict(zip(fills.idx, fills.commission + fills.slippage, strict=True))
    traded = dict(zip(fills.idx, fills.shares, strict=True))
    for i in involved:
        q = traded.get(i, 0.0)
        rows.append(
            {
                "stock": panel.tickers[i],
                "name": panel.metadata["name"].iloc[i] if "name" in panel.metadata else "",
                "price": price[i],
                "shares_now": shares[i],
                "shares_target": new_shares[i],
                "trade": q,
                "action": "BUY" if q > 0 else "SELL" if q < 0 else "HOLD",
                "trade_value": q * price[i],
                "estimated_cost": cost.get(i, 0.0),
                "weight_target": new_shares[i] * price[i] / capital,
            }
        )
    frame = (
        pd.DataFrame(rows).sort_values(["action", "stock"], kind="stable").reset_index(drop=True)
    )
    cash_left = invest + fills.cash_flow
    summary = {
        "date": f"{panel.dates[t]:%Y-%m-%d}",
        "theme": theme.stem,
        "stocks": int((new_shares > 0).sum()),
        "holdings_value": capital - invest,
        "invest": invest,
        "estimated_costs": fills.costs,
        "cash_left": cash_left,
        "portfolio_value_after": float(new_shares @ np.nan_to_num(price)) + cash_left,
    }
    return Plan(panel.dates[t], frame, summary)


STALE_DAYS = 7  # newest prices older than this: the orders are priced far from today's market


def staleness(last: pd.Timestamp, today: pd.Timestamp | None = None) -> str | None:
    """A warning in plain words when the newest price is more than STALE_DAYS old, else None."""
    today = today or pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    age = int((today - last).days)
    if age <= STALE_DAYS:
        return None
    return (
        f"The newest prices are from {last:%Y-%m-%d}, {age} days ago: the orders are priced at "
        "those closes, which may be far from today's. Bring the data up to date before trading."
    )


def show(p: Plan) -> str:
    """A readable table for the screen."""
    cols = [
        "action",
        "stock",
        "name",
        "shares_now",
        "trade",
        "shares_target",
        "price",
        "trade_value",
        "estimated_cost",
    ]
    table = p.orders[cols].to_string(
        index=False, float_format=lambda v: f"{v:,.4f}" if abs(v) < 100 else f"{v:,.2f}"
    )
    s = p.summary
    return (
        f"{s['theme']} on {s['date']}: {s['stocks']} stocks\n{table}\n"
        f"holdings {s['holdings_value']:,.2f} + new cash {s['invest']:,.2f}; estimated costs "
        f"{s['estimated_costs']:,.2f}; cash left {s['cash_left']:,.2f}; value after {s['portfolio_value_after']:,.2f}"
    )
