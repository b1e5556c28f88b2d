"""The heartbeat loop (E1-E3, E6, E7, E11).

Each trading day t from start to end, in this order:
  1. corporate actions at the start of the day: splits, dividends (ex-date), delistings;
  2. pending orders (decided at the previous close) fill at today's open; protective stops then
     fill if today's low (high for a short) reached them (with fill_timing = "close", the stops
     come first and the orders fill at the close);
  3. financing at the close: interest on cash (if enabled), on borrowed cash, and short fees;
  4. the portfolio is marked to market at today's close;
  5. on a rebalance day, the algorithm sees the view at today's close; its target weights (and
     stops) become orders for tomorrow.
The loop is O(universe) numpy work per day; pandas appears only in the view on rebalance days.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import faults
from ..config import Parameters
from ..errors import BacktestError, BadInputError
from ..frequency import PERIODS_PER_YEAR, periodic_rate, resolve
from ..panel import Panel
from ..view import View
from .broker import Broker, Fills
from .checkpoint import Checkpoints
from .clock import heartbeat_range, rebalance_days
from .costs import CostModel
from .ledger import Ledger
from .orders import OrderRules, borrowing_room, validate_weights, weights_to_orders

log = logging.getLogger(__name__)

RUNTIME_COLUMNS = [
    "date", "value", "cash", "holdings_value", "positions", "rebalance", "orders", "fills",
    "bought", "sold", "commission", "slippage", "dividends", "delisting_proceeds", "stops",
    "interest", "short_fees",
]  # fmt: skip
_C = {name: i - 1 for i, name in enumerate(RUNTIME_COLUMNS)}  # column -> index in the log array
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
    starting_value: float = 0.0  # cash + starting holdings at the close before the first heartbeat
    bar_frequency: str = "daily"  # each heartbeat is one bar of the data (frequency module)


def make_broker(params: Parameters) -> Broker:
    costs = CostModel(
        params.slippage_bps,
        params.commission_rate,
        params.commission_min,
        params.commission_per_share,
        params.spread_bps,
        params.impact_coef,
    )
    return Broker(costs, params.volume_cap, params.fractional_shares, params.allow_short)


def run_backtest(
    panel: Panel,
    params: Parameters,
    compute_weights: Callable,
    algorithm_name: str = "algorithm",
    progress: bool = False,
    starting_shares: np.ndarray | None = None,
    checkpoints: Checkpoints | None = None,
) -> RunResult:
    """Run the backtest over [params.start, params.end] and return the books as tables. With
    checkpoints, the state is saved every checkpoints.every days and a saved state is resumed."""
    dates, tickers, N = panel.dates, panel.tickers, len(panel.tickers)
    t0, t1 = heartbeat_range(dates, params.start, params.end)
    rebalance = rebalance_days(dates, t0, t1, params.rebalance)
    fields = panel.fields
    fill_px, volume = fields[params.fill_timing], fields["volume"]
    mark0 = np.nan_to_num(panel.mark)
    priced = np.isfinite(panel.mark)
    sigma = panel.volatility(params.impact_vol_days) if params.impact_coef > 0 else None
    broker = make_broker(params)
    rules = OrderRules.of(params)  # what order sizing reads, built once
    ev = panel.events
    carry = params.unfilled == "carry"
    stops_first = params.fill_timing == "close"
    bar_frequency = resolve(params.bar_frequency, dates)
    periods = PERIODS_PER_YEAR[bar_frequency]
    rf_daily = periodic_rate(params.risk_free_rate, periods)  # per bar
    borrow_daily = periodic_rate(params.risk_free_rate + params.borrow_spread, periods)
    short_fee_daily = periodic_rate(params.short_fee_rate, periods)

    ledger = Ledger(N, params.starting_cash, starting_shares)
    pending = np.zeros(N)
    stop = np.full(N, np.nan)
    n_days = t1 - t0 + 1
    log_rows = np.zeros((n_days, len(RUNTIME_COLUMNS) - 1))
    shares_hist = np.zeros((n_days, N))
    weight_rows: list[tuple[int, np.ndarray]] = []
    status, message, last = "completed", "", t1
    warnings: list[str] = []
    costs_paid, alarms = 0.0, list(COST_ALARMS)
    prev_value = ledger.cash + float(ledger.shares @ mark0[max(t0 - 1, 0)])
    starting_value = prev_value
    first = t0
    saved = checkpoints.load() if checkpoints else None
    if saved is not None:
        first = int(saved["next_t"])
        k = first - t0
        ledger = Ledger.from_state(saved, params.starting_cash)
        pending, stop = saved["pending"].copy(), saved["stop"].copy()
        log_rows[:k], shares_hist[:k] = saved["log_rows"], saved["shares_hist"]
        weight_rows = list(zip(saved["weight_t"].tolist(), saved["weight_targets"], strict=True))
        warnings, alarms = list(saved["warnings"]), list(saved["alarms"])
        costs_paid, prev_value = saved["costs_paid"], saved["prev_value"]
        starting_value = saved["starting_value"]
        log.info("resuming from the checkpoint at %s", f"{dates[first]:%Y-%m-%d}")

    def save_checkpoint(t: int) -> None:
        """The state before day t (every day before it done)."""
        k = t - t0
        checkpoints.save(
            {
                **ledger.state(),
                "next_t": t,
                "pending": pending,
                "stop": stop,
                "log_rows": log_rows[:k],
                "shares_hist": shares_hist[:k],
                "weight_t": np.array([w[0] for w in weight_rows], dtype=np.int64),
                "weight_targets": np.array([w[1] for w in weight_rows]).reshape(-1, N),
                "warnings": warnings,
                "alarms": alarms,
                "costs_paid": costs_paid,
                "prev_value": prev_value,
                "starting_value": starting_value,
            }
        )

    def fill(t: int, orders: np.ndarray, price: np.ndarray, reason: str) -> Fills:
        """Execute orders at `price`, check conservation (E11), book them, log the day's totals."""
        nonlocal costs_paid
        floor = -borrowing_room(params.max_leverage, prev_value)
        before = ledger.cash
        fills = broker.execute(
            orders,
            price,
            volume[t],
            ledger.shares,
            ledger.cash,
            None if sigma is None else sigma[t],
            floor,
        )
        _check_fill(t, dates, fills, before, floor)
        ledger.apply(t, fills, reason)
        traded = fills.shares * fills.mid
        row = log_rows[t - t0]
        row[_C["fills"]] += np.count_nonzero(fills.shares)
        row[_C["bought"]] += traded[traded > 0].sum()
        row[_C["sold"]] -= traded[traded < 0].sum()
        row[_C["commission"]] += fills.commission.sum()
        row[_C["slippage"]] += fills.slippage.sum()
        costs_paid += fills.costs
        while alarms and costs_paid >= alarms[0] * params.starting_cash:
            warnings.append(
                f"by {dates[t]:%Y-%m-%d} costs have consumed {costs_paid:,.2f}, "
                f"{alarms.pop(0):.0%} or more of the starting value"
            )
            log.warning(warnings[-1])
        return fills

    def fill_pending(t: int) -> None:
        nonlocal pending
        if not pending.any():
            return
        fills = fill(t, pending, fill_px[t], "rebalance")
        if carry:
            pending[fills.idx] -= fills.shares
        else:
            pending = np.zeros(N)

    def fill_stops(t: int) -> None:
        held = ledger.shares
        long_hit = (held > 0) & (fields["low"][t] <= stop)
        short_hit = (held < 0) & (fields["high"][t] >= stop)
        hit = long_hit | short_hit
        if not hit.any():
            return
        # at the stop, or at the open when the price gapped through it
        opened = fields["open"][t]
        price = np.where(long_hit, np.fmin(opened, stop), np.fmax(opened, stop))
        fills = fill(t, np.where(hit, -held, 0.0), price, "stop")
        log_rows[t - t0, _C["stops"]] += np.count_nonzero(fills.shares)
        pending[hit] = 0.0
        stop[ledger.shares == 0] = np.nan

    days = range(first, t1 + 1)
    for t in tqdm(days, desc="trading", unit="day", disable=not progress, leave=False):
        faults.point("heartbeat")
        if checkpoints and t > first and checkpoints.due(t - t0):
            save_checkpoint(t)
        row = log_rows[t - t0]
        # 1. corporate actions
        if t in ev.splits:
            idx, ratio = ev.splits[t]
            ledger.split(t, idx, ratio)
            pending[idx] *= ratio
            stop[idx] /= ratio
        if t in ev.dividends:
            row[_C["dividends"]] = ledger.dividend(t, *ev.dividends[t])
        if t in ev.delistings:
            idx, value = ev.delistings[t]
            row[_C["delisting_proceeds"]] = ledger.delist(t, idx, value)
            pending[idx] = 0.0
            stop[idx] = np.nan
        # 2. fills and stops
        watching = bool(np.isfinite(stop).any())
        if stops_first and watching:
            fill_stops(t)
        fill_pending(t)
        if not stops_first and watching:
            fill_stops(t)
        # 3. financing at the close
        if ledger.cash > 0 and params.cash_interest:
            row[_C["interest"]] = ledger.cash_flow(t, "interest", ledger.cash * rf_daily)
        elif ledger.cash < 0:
            row[_C["interest"]] = ledger.cash_flow(t, "interest", ledger.cash * borrow_daily)
        if params.allow_short:
            short_value = -float(np.minimum(ledger.shares, 0.0) @ mark0[t])
            if short_value > 0:
                row[_C["short_fees"]] = -ledger.cash_flow(
                    t, "short_fee", -short_value * short_fee_daily
                )
        # 4. mark to market
        holdings = float(ledger.shares @ mark0[t])
        value = ledger.cash + holdings
        row[_C["value"]], row[_C["cash"]], row[_C["holdings_value"]] = value, ledger.cash, holdings
        row[_C["positions"]] = np.count_nonzero(ledger.shares)
        shares_hist[t - t0] = ledger.shares
        prev_value = value
        if value <= max(1e-9 * params.starting_cash, params.commission_min):
            status = "stopped: equity exhausted"
            message = (
                f"portfolio equity is gone on {dates[t]:%Y-%m-%d}: value {value:.2f} cannot pay "
                f"a minimum commission of {params.commission_min:g}; trading stopped. Costs paid "
                f"so far: {costs_paid:,.2f} ({costs_paid / params.starting_cash:.0%} of the "
                "starting value)"
            )
            log.warning(message)
            last = t
            break
        # 5. decide
        if rebalance[t]:
            row[_C["rebalance"]] = 1
            view = View(panel, t, ledger.shares, ledger.cash, params.lookback_days)
            decision = _call(compute_weights, view, params, algorithm_name)
            if decision is None:  # leave the portfolio (and its stops) as it is
                continue
            allowed = panel.members(t) | (ledger.shares != 0)
            target, stop = validate_weights(
                decision, dates[t], panel.labels, allowed, priced[t], params.max_leverage,
                algorithm_name, params.allow_short,
            )  # fmt: skip
            weight_rows.append((t, target))
            pending = weights_to_orders(target, ledger.shares, ledger.cash, panel.mark[t], rules)
            _check_orders(t, dates, pending, mark0[t], ledger.cash, value, params.max_leverage)
            row[_C["orders"]] = np.count_nonzero(pending)

    n = last - t0 + 1
    runtime = pd.DataFrame(log_rows[:n], columns=RUNTIME_COLUMNS[1:])
    runtime.insert(0, "date", dates[t0 : last + 1])
    runtime["rebalance"] = runtime["rebalance"].astype(bool)
    for col in ("positions", "orders", "fills", "stops"):
        runtime[col] = runtime[col].astype(np.int64)
    return RunResult(
        runtime,
        ledger.trades_table(dates, tickers),
        ledger.cash_table(dates, tickers),
        _positions(shares_hist[:n], panel, t0, log_rows[:n, _C["value"]]),
        _weights(weight_rows, dates, tickers),
        status,
        message,
        warnings,
        starting_value,
        bar_frequency,
    )


def _call(compute_weights: Callable, view: View, params: Parameters, name: str):
    """Call the user's rule; an exception in it is reported with the day, not as a bare traceback."""
    try:
        return compute_weights(view, params)
    except BacktestError:
        raise
    except SystemExit as exc:  # sys.exit() in user code ends the algorithm, not the backtest
        raise BadInputError(
            f"{name}: compute_weights called sys.exit({exc.code!r}) on {view.date:%Y-%m-%d}; "
            "return weights (or None to leave the portfolio as it is) instead"
        ) from exc
    except Exception as exc:
        log.debug("compute_weights traceback", exc_info=True)
        raise BadInputError(
            f"{name}: compute_weights raised {type(exc).__name__} on "
            f"{view.date:%Y-%m-%d}: {exc} (the full traceback is in the run's log)"
        ) from exc


def _check_fill(t: int, dates, fills: Fills, cash_before: float, floor: float) -> None:
    """E11: value is conserved across a fill (cash change + shares x reference price =
    -(commission + price costs)), and cash stays above its floor."""
    lhs = fills.cash_flow + float((fills.shares * fills.mid).sum())
    rhs = -fills.costs
    scale = max(1.0, abs(cash_before))
    if abs(lhs - rhs) > 1e-6 * scale:
        raise InvariantError(
            f"value not conserved by fills on {dates[t]:%Y-%m-%d}: {lhs:.6f} != {rhs:.6f}"
        )
    if cash_before + fills.cash_flow < floor - 1e-6 * scale:
        raise InvariantError(
            f"cash went below its floor ({cash_before + fills.cash_flow:.2f} < {floor:.2f}) on "
            f"{dates[t]:%Y-%m-%d}"
        )


def _check_orders(
    t: int,
    dates,
    orders: np.ndarray,
    price: np.ndarray,
    cash: float,
    equity: float,
    max_leverage: float,
) -> None:
    """E11: at the decision prices, the orders need no more cash than the account may use."""
    need = float(orders @ price)
    room = cash + borrowing_room(max_leverage, equity)
    if need > max(room, 0.0) + 1e-6 * max(1.0, abs(equity)):
        raise InvariantError(
            f"orders made on {dates[t]:%Y-%m-%d} need {need:,.2f} of cash but only {room:,.2f} is "
            "available"
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
            "ticker": pd.Categorical.from_codes(cols, categories=panel.labels),
            "shares": shares[rows, cols],
            "price": price,
            "value": value,
            "weight": value / equity[rows],
        }
    )


def _weights(rows: list[tuple[int, np.ndarray]], dates, tickers) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"date": dates[t], "ticker": tickers[w != 0], "weight": w[w != 0]})
        for t, w in rows
    ]
    if not parts:
        return pd.DataFrame(columns=["date", "ticker", "weight"])
    return pd.concat(parts, ignore_index=True)
