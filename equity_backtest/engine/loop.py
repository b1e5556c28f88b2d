"""The heartbeat loop (E1-E3, E6, E7, E11).

Each trading day t from start to end, in this order:
  1. corporate actions at the start of the day: splits, dividends (ex-date), delistings;
  2. pending orders (decided at the previous close) fill at today's open (or close);
  3. the portfolio is marked to market at today's close;
  4. on a rebalance day, the algorithm sees the view at today's close and its target weights
     become orders for tomorrow.
The loop is O(universe) numpy work per day; pandas appears only in the view on rebalance days.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..config import Parameters
from ..errors import BacktestError, BadInputError
from ..panel import Panel
from ..view import View
from .broker import execute
from .clock import heartbeat_range, rebalance_days
from .costs import CostModel
from .ledger import Ledger
from .orders import validate_weights, weights_to_orders

log = logging.getLogger(__name__)

RUNTIME_COLUMNS = [
    "date",
    "value",
    "cash",
    "holdings_value",
    "positions",
    "rebalance",
    "orders",
    "fills",
    "bought",
    "sold",
    "commission",
    "slippage",
    "dividends",
    "delisting_proceeds",
]


COST_ALARMS = (0.25, 0.5, 0.75, 1.0)  # warn when costs pass these fractions of the starting value


class InvariantError(BacktestError):
    """An engine invariant broke (E11): a bug, reported with the day and the numbers."""

    exit_code = 1


@dataclasses.dataclass
class RunResult:
    runtime_log: pd.DataFrame
    trades: pd.DataFrame
    cash_ledger: pd.DataFrame
    positions: pd.DataFrame
    target_weights: pd.DataFrame
    status: str  # "completed" or "stopped: equity exhausted"
    message: str
    warnings: list[str] = dataclasses.field(default_factory=list)


def run_backtest(
    panel: Panel,
    params: Parameters,
    compute_weights: Callable,
    algorithm_name: str = "algorithm",
    progress: bool = False,
) -> RunResult:
    """Run the backtest over [params.start, params.end] and return the books as tables."""
    dates, tickers, N = panel.dates, panel.tickers, len(panel.tickers)
    t0, t1 = heartbeat_range(dates, params.start, params.end)
    rebalance = rebalance_days(dates, t0, t1, params.rebalance)
    fill_px = panel.fields[params.fill_timing]
    volume = panel.fields["volume"]
    mark0 = np.nan_to_num(panel.mark)
    priced = np.isfinite(panel.mark)
    costs = CostModel(
        params.slippage_bps,
        params.commission_rate,
        params.commission_min,
        params.commission_per_share,
    )
    ev = panel.events
    carry = params.unfilled == "carry"

    ledger = Ledger(N, params.starting_cash)
    pending = np.zeros(N)
    has_pending = False
    n_days = t1 - t0 + 1
    log_rows = np.zeros((n_days, len(RUNTIME_COLUMNS) - 1))
    shares_hist = np.zeros((n_days, N))
    weight_rows: list[tuple[int, np.ndarray]] = []
    status, message, last = "completed", "", t1
    warnings: list[str] = []
    costs_paid, cost_alarms = 0.0, iter(COST_ALARMS)
    next_alarm = next(cost_alarms)

    for t in tqdm(range(t0, t1 + 1), desc="trading", unit="day", disable=not progress, leave=False):
        row = log_rows[t - t0]
        if t in ev.splits:
            idx, ratio = ev.splits[t]
            ledger.split(t, idx, ratio)
            pending[idx] *= ratio
        if t in ev.dividends:
            row[11] = ledger.dividend(t, *ev.dividends[t])
        if t in ev.delistings:
            idx, value = ev.delistings[t]
            row[12] = ledger.delist(t, idx, value)
            pending[idx] = 0.0

        if has_pending:
            cash_before = ledger.cash
            fills = execute(
                pending,
                fill_px[t],
                volume[t],
                ledger.shares,
                ledger.cash,
                costs,
                params.volume_cap,
                params.fractional_shares,
            )
            _check_fill(t, dates, fills, cash_before)
            ledger.apply(t, fills)
            traded = fills.shares * fills.mid
            row[6] = np.count_nonzero(fills.shares)
            row[7] = traded[traded > 0].sum()
            row[8] = -traded[traded < 0].sum()
            row[9] = fills.commission.sum()
            row[10] = fills.slippage.sum()
            costs_paid += row[9] + row[10]
            while next_alarm is not None and costs_paid >= next_alarm * params.starting_cash:
                warnings.append(
                    f"by {dates[t]:%Y-%m-%d} costs have consumed {costs_paid:,.2f}, "
                    f"{next_alarm:.0%} or more of the starting value"
                )
                log.warning(warnings[-1])
                next_alarm = next(cost_alarms, None)
            if carry:
                pending[fills.idx] -= fills.shares
            else:
                pending[:] = 0.0
            has_pending = bool(pending.any())

        holdings = float(ledger.shares @ mark0[t])
        value = ledger.cash + holdings
        row[0], row[1], row[2], row[3] = (
            value,
            ledger.cash,
            holdings,
            np.count_nonzero(ledger.shares),
        )
        shares_hist[t - t0] = ledger.shares
        if ledger.cash < -1e-6 * max(1.0, abs(value)):
            raise InvariantError(f"cash went negative ({ledger.cash:.2f}) on {dates[t]:%Y-%m-%d}")
        if value <= max(1e-9 * params.starting_cash, params.commission_min):
            status = "stopped: equity exhausted"
            costs_so_far = log_rows[: t - t0 + 1, 9].sum() + log_rows[: t - t0 + 1, 10].sum()
            message = (
                f"portfolio equity is gone on {dates[t]:%Y-%m-%d}: value {value:.2f} cannot pay "
                f"a minimum commission of {params.commission_min:g}; trading stopped. Costs paid so "
                f"far: {costs_so_far:,.2f} ({costs_so_far / params.starting_cash:.0%} of the "
                "starting value)"
            )
            log.warning(message)
            last = t
            break

        if rebalance[t]:
            view = View(panel, t, ledger.shares, ledger.cash, params.lookback_days)
            allowed = panel.members(t) | (ledger.shares != 0)
            target = validate_weights(
                _call(compute_weights, view, params, algorithm_name),
                dates[t],
                tickers,
                allowed,
                priced[t],
                params.max_leverage,
                algorithm_name,
            )
            weight_rows.append((t, target))
            pending = weights_to_orders(target, ledger.shares, ledger.cash, panel.mark[t], params)
            has_pending = bool(pending.any())
            row[4], row[5] = 1, np.count_nonzero(pending)

    n = last - t0 + 1
    runtime = pd.DataFrame(log_rows[:n], columns=RUNTIME_COLUMNS[1:])
    runtime.insert(0, "date", dates[t0 : last + 1])
    runtime["rebalance"] = runtime["rebalance"].astype(bool)
    for col in ("positions", "orders", "fills"):
        runtime[col] = runtime[col].astype(np.int64)
    return RunResult(
        runtime,
        ledger.trades_table(dates, tickers),
        ledger.cash_table(dates, tickers),
        _positions(shares_hist[:n], panel, t0, log_rows[:n, 0]),
        _weights(weight_rows, dates, tickers),
        status,
        message,
        warnings,
    )


def _call(compute_weights: Callable, view: View, params: Parameters, name: str):
    """Call the user's rule; an exception in it is reported with the day, not as a bare traceback."""
    try:
        return compute_weights(view, params)
    except BacktestError:
        raise
    except Exception as exc:
        log.debug("compute_weights traceback", exc_info=True)
        raise BadInputError(
            f"{name}: compute_weights raised {type(exc).__name__} on "
            f"{view.date:%Y-%m-%d}: {exc} (full traceback in run.log)"
        ) from exc


def _check_fill(t: int, dates, fills, cash_before: float) -> None:
    """E11: value is conserved across a fill: cash change + shares x mid = -(commission + slippage)."""
    lhs = fills.cash_flow + float((fills.shares * fills.mid).sum())
    rhs = -fills.costs
    if abs(lhs - rhs) > 1e-6 * max(1.0, abs(cash_before)):
        raise InvariantError(
            f"value not conserved by fills on {dates[t]:%Y-%m-%d}: {lhs:.6f} != {rhs:.6f}"
        )


def _positions(shares: np.ndarray, panel: Panel, t0: int, equity: np.ndarray) -> pd.DataFrame:
    """Daily holdings (long format, non-zero only) with close price, value and weight in equity."""
    rows, cols = np.nonzero(shares)
    t = rows + t0
    price = panel.mark[t, cols]
    value = shares[rows, cols] * price
    return pd.DataFrame(
        {
            "date": panel.dates[t],
            "ticker": panel.tickers[cols],
            "shares": shares[rows, cols],
            "price": price,
            "value": value,
            "weight": value / equity[rows],
        }
    )


def _weights(rows: list[tuple[int, np.ndarray]], dates, tickers) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"date": dates[t], "ticker": tickers[w > 0], "weight": w[w > 0]})
        for t, w in rows
    ]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["date", "ticker", "weight"])
    )
