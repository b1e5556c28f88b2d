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
import functools
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..config import Parameters
from ..data.frequency import PERIODS_PER_YEAR, periodic_rate, resolve
from ..data.panel import Panel
from ..errors import BacktestError, BadInputError
from ..infra import faults
from .broker import Broker, Fills
from .checkpoint import Checkpoints
from .clock import heartbeat_range, rebalance_days
from .ledger import Ledger
from .orders import borrowing_room, validate_exits, validate_weights, weights_to_orders
from .spec import EngineSpec
from .view import View

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
    holdings: Callable[[], pd.DataFrame]  # builds the positions table (millions of rows) on demand
    target_weights: pd.DataFrame
    status: str  # "completed" or "stopped: equity exhausted"
    message: str
    warnings: list[str] = dataclasses.field(default_factory=list)
    starting_value: float = 0.0  # cash + starting holdings at the close before the first heartbeat
    bar_frequency: str = "daily"  # each heartbeat is one bar of the data (frequency module)

    @functools.cached_property
    def positions(self) -> pd.DataFrame:
        """Daily holdings in long format (positions_table), built on first use: a sweep that reads
        only values never pays for it."""
        return self.holdings()


def make_broker(params: Parameters) -> Broker:
    return EngineSpec.of(params).broker()


@dataclasses.dataclass
class LoopState:
    """Everything the loop carries from one day to the next, and so what a checkpoint holds:
    the books, orders waiting for tomorrow, stops, the day-by-day log so far, and the alarms."""

    ledger: Ledger
    pending: np.ndarray  # signed shares to trade at the next fill
    stop: np.ndarray  # protective stop per ticker (NaN: none)
    take_profit: np.ndarray  # take-profit target per ticker (NaN: none)
    exit_day: np.ndarray  # heartbeat on whose fill the position is closed (-1: none)
    log_rows: np.ndarray  # one row per heartbeat of the window (RUNTIME_COLUMNS[1:])
    shares_hist: np.ndarray  # shares held at each close of the window
    weight_rows: list[tuple[int, np.ndarray]]
    warnings: list[str]
    alarms: list[float]  # cost alarms not yet raised
    costs_paid: float
    prev_value: float  # equity at the previous close
    starting_value: float

    @classmethod
    def fresh(
        cls, spec: EngineSpec, n: int, n_days: int, shares: np.ndarray | None, mark: np.ndarray
    ) -> LoopState:
        ledger = Ledger(n, spec.starting_cash, shares)
        value = ledger.cash + float(ledger.shares @ mark)
        return cls(
            ledger, np.zeros(n), np.full(n, np.nan), np.full(n, np.nan), np.full(n, -1),
            np.zeros((n_days, len(RUNTIME_COLUMNS) - 1)), np.zeros((n_days, n)), [], [],
            list(COST_ALARMS), 0.0, value, value,
        )  # fmt: skip

    @classmethod
    def resume(cls, saved: dict, spec: EngineSpec, n: int, n_days: int, t0: int) -> LoopState:
        """The state a checkpoint saved before day saved["next_t"]."""
        k = int(saved["next_t"]) - t0
        state = cls.fresh(spec, n, n_days, None, np.zeros(n))
        state.ledger = Ledger.from_state(saved, spec.starting_cash)
        state.pending, state.stop = saved["pending"].copy(), saved["stop"].copy()
        if "take_profit" in saved:  # checkpoints written before take-profits had none
            state.take_profit = saved["take_profit"].copy()
            state.exit_day = saved["exit_day"].astype(np.int64)
        state.log_rows[:k], state.shares_hist[:k] = saved["log_rows"], saved["shares_hist"]
        state.weight_rows = list(
            zip(saved["weight_t"].tolist(), saved["weight_targets"], strict=True)
        )
        state.warnings, state.alarms = list(saved["warnings"]), list(saved["alarms"])
        state.costs_paid, state.prev_value = saved["costs_paid"], saved["prev_value"]
        state.starting_value = saved["starting_value"]
        return state

    def save(self, checkpoints: Checkpoints, t: int, t0: int) -> None:
        """Checkpoint the state before day t (every day before it done)."""
        checkpoints.save(self.as_dict(t, t0))

    def as_dict(self, t: int, t0: int) -> dict:
        """The state before day t as flat arrays and plain values (what a checkpoint holds)."""
        k, n = t - t0, len(self.pending)
        return {
            **self.ledger.state(),
            "next_t": t,
            "pending": self.pending,
            "stop": self.stop,
            "take_profit": self.take_profit,
            "exit_day": self.exit_day,
            "log_rows": self.log_rows[:k],
            "shares_hist": self.shares_hist[:k],
            "weight_t": np.array([w[0] for w in self.weight_rows], dtype=np.int64),
            "weight_targets": np.array([w[1] for w in self.weight_rows]).reshape(-1, n),
            "warnings": self.warnings,
            "alarms": self.alarms,
            "costs_paid": self.costs_paid,
            "prev_value": self.prev_value,
            "starting_value": self.starting_value,
        }


class Heartbeat:
    """One trading day of the loop, a method per numbered step of the module docstring. Reads the
    panel and the spec; changes only the LoopState."""

    def __init__(self, panel: Panel, spec: EngineSpec, state: LoopState, t0: int):
        self.panel, self.spec, self.state, self.t0 = panel, spec, state, t0
        self.dates, self.fields = panel.dates, panel.fields
        self.fill_px, self.volume = self.fields[spec.fill_timing], self.fields["volume"]
        self.mark0 = np.nan_to_num(panel.mark)
        self.priced = np.isfinite(panel.mark)
        self.sigma = panel.volatility(spec.impact_vol_days) if spec.costs.impact_coef > 0 else None
        self.broker = spec.broker()
        # a live account's broker that reports fills (run.live_file_broker): the orders' fills
        # as it reports them, booked as they are (no cost model, no cash floor: what happened)
        self.external: Callable[[int, np.ndarray], Fills] | None = None
        self.bar_frequency = resolve(spec.bar_frequency, panel.dates)
        periods = PERIODS_PER_YEAR[self.bar_frequency]
        self.rf = periodic_rate(spec.risk_free_rate, periods)  # per bar
        self.borrow_rate = periodic_rate(spec.risk_free_rate + spec.borrow_spread, periods)
        self.short_fee = periodic_rate(spec.short_fee_rate, periods)
        self._exits_set()

    def _exits_set(self) -> None:
        """Note whether any stop, target or time exit is set, so that the days of a run without
        them skip their checks. Set where exits are given (here, decide); clearing one leaves the
        note on, which only costs a check that finds nothing."""
        st = self.state
        self.watching = bool(np.isfinite(st.stop).any() or np.isfinite(st.take_profit).any())
        self.timed = bool((st.exit_day >= 0).any())

    def row(self, t: int) -> np.ndarray:
        return self.state.log_rows[t - self.t0]

    def step(
        self, t: int, rebalance: bool, compute_weights: Callable, params: Parameters, name: str
    ) -> str | None:
        """Day t, steps 1 to 5; the message that stops trading when equity is gone (then no
        decision), else None. What a backtest runs for each day, and a live account for each
        new bar."""
        self.corporate_actions(t)  # 1
        self.fills(t)  # 2
        self.financing(t)  # 3
        gone = self.mark(t)  # 4
        if not gone and rebalance:
            self.decide(t, compute_weights, params, name)  # 5
        return gone

    # 1. corporate actions at the start of the day
    def corporate_actions(self, t: int) -> None:
        ev, st, row = self.panel.events, self.state, self.row(t)
        if t in ev.splits:
            idx, ratio = ev.splits[t]
            st.ledger.split(t, idx, ratio)
            st.pending[idx] *= ratio
            st.stop[idx] /= ratio
            st.take_profit[idx] /= ratio
        if t in ev.dividends:
            row[_C["dividends"]] = st.ledger.dividend(t, *ev.dividends[t])
        if t in ev.delistings:
            idx, value = ev.delistings[t]
            row[_C["delisting_proceeds"]] = st.ledger.delist(t, idx, value)
            st.pending[idx] = 0.0
            st.stop[idx] = np.nan
            st.take_profit[idx] = np.nan
            st.exit_day[idx] = -1

    # 2. pending orders and protective stops
    def fills(self, t: int) -> None:
        if self.timed:
            self._time_exits(t)
        stops_first = self.spec.fill_timing == "close"
        if stops_first and self.watching:
            self._fill_stops(t)
        self._fill_pending(t)
        if not stops_first and self.watching:
            self._fill_stops(t)

    def _fill(self, t: int, orders: np.ndarray, price: np.ndarray, reason: str) -> Fills:
        """Execute orders at `price`, check conservation (E11), book them, log the day's totals."""
        st = self.state
        floor = -borrowing_room(self.spec.orders.max_leverage, st.prev_value)
        before = st.ledger.cash
        if self.external is not None and reason == "rebalance":
            fills, floor = self.external(t, orders), -np.inf
        else:
            sigma = None if self.sigma is None else self.sigma[t]
            fills = self.broker.execute(
                orders, price, self.volume[t], st.ledger.shares, st.ledger.cash, sigma, floor
            )
        _check_fill(t, self.dates, fills, before, floor)
        st.ledger.apply(t, fills, reason)
        traded = fills.shares * fills.mid
        row = self.row(t)
        row[_C["fills"]] += np.count_nonzero(fills.shares)
        row[_C["bought"]] += traded[traded > 0].sum()
        row[_C["sold"]] -= traded[traded < 0].sum()
        row[_C["commission"]] += fills.commission.sum()
        row[_C["slippage"]] += fills.slippage.sum()
        st.costs_paid += fills.costs
        while st.alarms and st.costs_paid >= st.alarms[0] * self.spec.starting_cash:
            st.warnings.append(
                f"by {self.dates[t]:%Y-%m-%d} costs have consumed {st.costs_paid:,.2f}, "
                f"{st.alarms.pop(0):.0%} or more of the starting value"
            )
            log.warning(st.warnings[-1])
        return fills

    def _fill_pending(self, t: int) -> None:
        st = self.state
        if not st.pending.any():
            return
        fills = self._fill(t, st.pending, self.fill_px[t], "rebalance")
        if self.spec.carry_unfilled:
            st.pending[fills.idx] -= fills.shares
        else:
            st.pending = np.zeros(len(st.pending))

    def _time_exits(self, t: int) -> None:
        """Positions whose time exit is today close at today's fill price, before other orders."""
        st = self.state
        today = st.exit_day == t
        if not today.any():
            return
        st.exit_day[today] = -1
        due = today & (st.ledger.shares != 0)
        if due.any():
            self._fill(t, np.where(due, -st.ledger.shares, 0.0), self.fill_px[t], "time_exit")
            st.pending[due] = 0.0
            self._clear_flat()

    def _fill_stops(self, t: int) -> None:
        """Protective stops, then take-profit targets, against the day's range. A bar that
        reaches both for one position is the stop's (the order inside a bar is unknown)."""
        st, fields = self.state, self.fields
        held = st.ledger.shares
        low, high, opened = fields["low"][t], fields["high"][t], fields["open"][t]
        long_hit = (held > 0) & (low <= st.stop)
        short_hit = (held < 0) & (high >= st.stop)
        hit = long_hit | short_hit
        if hit.any():
            # at the stop, or at the open when the price gapped through it
            price = np.where(long_hit, np.fmin(opened, st.stop), np.fmax(opened, st.stop))
            fills = self._fill(t, np.where(hit, -held, 0.0), price, "stop")
            self.row(t)[_C["stops"]] += np.count_nonzero(fills.shares)
            st.pending[hit] = 0.0
        held = st.ledger.shares
        long_tp = (held > 0) & (high >= st.take_profit) & ~hit
        short_tp = (held < 0) & (low <= st.take_profit) & ~hit
        take = long_tp | short_tp
        if take.any():
            # at the target, or at the open when the price gapped past it
            tp = st.take_profit
            price = np.where(long_tp, np.fmax(opened, tp), np.fmin(opened, tp))
            self._fill(t, np.where(take, -held, 0.0), price, "take_profit")
            st.pending[take] = 0.0
        if hit.any() or take.any():
            self._clear_flat()

    def _clear_flat(self) -> None:
        """A closed position's stop, target and time exit go with it (not those of a position
        whose order has yet to fill: with fill_timing = "close", stops come first)."""
        st = self.state
        flat = (st.ledger.shares == 0) & (st.pending == 0)
        st.stop[flat] = np.nan
        st.take_profit[flat] = np.nan
        st.exit_day[flat] = -1

    # 3. financing at the close
    def financing(self, t: int) -> None:
        ledger, row = self.state.ledger, self.row(t)
        if ledger.cash > 0 and self.spec.cash_interest:
            row[_C["interest"]] = ledger.cash_flow(t, "interest", ledger.cash * self.rf)
        elif ledger.cash < 0:
            row[_C["interest"]] = ledger.cash_flow(t, "interest", ledger.cash * self.borrow_rate)
        if self.spec.allow_short:
            short_value = -float(np.minimum(ledger.shares, 0.0) @ self.mark0[t])
            if short_value > 0:
                row[_C["short_fees"]] = -ledger.cash_flow(
                    t, "short_fee", -short_value * self.short_fee
                )

    # 4. mark to market; returns the message that stops trading when equity is gone
    def mark(self, t: int) -> str | None:
        st, row, spec = self.state, self.row(t), self.spec
        holdings = float(st.ledger.shares @ self.mark0[t])
        value = st.ledger.cash + holdings
        row[_C["value"]], row[_C["cash"]], row[_C["holdings_value"]] = (
            value,
            st.ledger.cash,
            holdings,
        )
        row[_C["positions"]] = np.count_nonzero(st.ledger.shares)
        st.shares_hist[t - self.t0] = st.ledger.shares
        st.prev_value = value
        if value > max(1e-9 * spec.starting_cash, spec.costs.commission_min):
            return None
        return (
            f"portfolio equity is gone on {self.dates[t]:%Y-%m-%d}: value {value:.2f} cannot pay "
            f"a minimum commission of {spec.costs.commission_min:g}; trading stopped. Costs paid "
            f"so far: {st.costs_paid:,.2f} ({st.costs_paid / spec.starting_cash:.0%} of the "
            "starting value)"
        )

    # 5. on a rebalance day, the algorithm's target weights become tomorrow's orders
    def decide(self, t: int, compute_weights: Callable, params: Parameters, name: str) -> None:
        st, spec, panel = self.state, self.spec, self.panel
        self.row(t)[_C["rebalance"]] = 1
        view = View(panel, t, st.ledger.shares, st.ledger.cash, spec.lookback_days)
        decision = _call(compute_weights, view, params, name)
        if decision is None:  # leave the portfolio (and its stops) as it is
            return
        allowed = panel.members(t) | (st.ledger.shares != 0)
        target, st.stop = validate_weights(
            decision, self.dates[t], panel.labels, allowed, self.priced[t], spec.orders.max_leverage,
            name, spec.allow_short,
        )  # fmt: skip
        st.take_profit, holds = validate_exits(decision, self.dates[t], panel.labels, name)
        # a time exit of N bars: closed at the fill N bars after this decision (an order made
        # now fills at the next bar, so a new position is held N - 1 bars)
        st.exit_day = np.where(np.isfinite(holds), t + np.nan_to_num(holds), -1).astype(np.int64)
        self._exits_set()
        st.weight_rows.append((t, target))
        st.pending = weights_to_orders(
            target, st.ledger.shares, st.ledger.cash, panel.mark[t], spec.orders
        )
        _check_orders(
            t, self.dates, st.pending, self.mark0[t], st.ledger.cash, st.prev_value,
            spec.orders.max_leverage,
        )  # fmt: skip
        self.row(t)[_C["orders"]] = np.count_nonzero(st.pending)


def run_backtest(
    panel: Panel,
    params: Parameters,
    compute_weights: Callable,
    algorithm_name: str = "algorithm",
    progress: bool = False,
    starting_shares: np.ndarray | None = None,
    checkpoints: Checkpoints | None = None,
) -> RunResult:
    """Run the backtest over [params.start, params.end] and return the books as tables. The
    engine reads its EngineSpec, built once here; params itself only reaches compute_weights.
    With checkpoints, the state is saved every checkpoints.every days and a saved one resumed."""
    spec = EngineSpec.of(params)
    dates, N = panel.dates, len(panel.tickers)
    t0, t1 = heartbeat_range(dates, spec.start, spec.end)
    rebalance = rebalance_days(dates, t0, t1, spec.rebalance)
    n_days = t1 - t0 + 1
    saved = checkpoints.load() if checkpoints else None
    if saved is None:
        first = t0
        mark = np.nan_to_num(panel.mark[max(t0 - 1, 0)])
        state = LoopState.fresh(spec, N, n_days, starting_shares, mark)
    else:
        first = int(saved["next_t"])
        state = LoopState.resume(saved, spec, N, n_days, t0)
        log.info("resuming from the checkpoint at %s", f"{dates[first]:%Y-%m-%d}")
    day = Heartbeat(panel, spec, state, t0)
    status, message, last = "completed", "", t1
    for t in tqdm(
        range(first, t1 + 1), desc="trading", unit="day", disable=not progress, leave=False
    ):
        faults.point("heartbeat")
        if checkpoints and t > first and checkpoints.due(t - t0):
            state.save(checkpoints, t, t0)
        gone = day.step(t, rebalance[t], compute_weights, params, algorithm_name)
        if gone:
            status, message, last = "stopped: equity exhausted", gone, t
            log.warning(message)
            break

    n = last - t0 + 1
    runtime = pd.DataFrame(state.log_rows[:n], columns=RUNTIME_COLUMNS[1:])
    runtime.insert(0, "date", dates[t0 : last + 1])
    runtime["rebalance"] = runtime["rebalance"].astype(bool)
    for col in ("positions", "orders", "fills", "stops"):
        runtime[col] = runtime[col].astype(np.int64)
    return RunResult(
        runtime,
        state.ledger.trades_table(dates, panel.tickers),
        state.ledger.cash_table(dates, panel.tickers),
        functools.partial(
            positions_table, state.shares_hist[:n], panel, t0, state.log_rows[:n, _C["value"]]
        ),
        _weights(state.weight_rows, dates, panel.tickers),
        status,
        message,
        state.warnings,
        state.starting_value,
        day.bar_frequency,
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
    -(commission + price costs)), and the fills do not take cash below its floor."""
    lhs = fills.cash_flow + float((fills.shares * fills.mid).sum())
    rhs = -fills.costs
    scale = max(1.0, abs(cash_before))
    if abs(lhs - rhs) > 1e-6 * scale:
        raise InvariantError(
            f"value not conserved by fills on {dates[t]:%Y-%m-%d}: {lhs:.6f} != {rhs:.6f}"
        )
    # a levered book whose equity fell may start the day below its floor (no trade put it
    # there): then the fills must not take cash lower still
    if cash_before + fills.cash_flow < min(floor, cash_before) - 1e-6 * scale:
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


def positions_table(shares: np.ndarray, panel: Panel, t0: int, equity: np.ndarray) -> pd.DataFrame:
    """Daily holdings (long format, non-zero only) with close price, value and weight in equity:
    `shares` holds one row per day from panel day t0 on. A backtest's and a live account's."""
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
        },
        copy=False,  # fresh arrays: no need to copy millions of rows into one block
    )


def _weights(rows: list[tuple[int, np.ndarray]], dates, tickers) -> pd.DataFrame:
    """Target weights in long format (non-zero only), rebalance by rebalance in ticker order."""
    if not rows:
        return pd.DataFrame(columns=["date", "ticker", "weight"])
    days = np.array([t for t, _ in rows], dtype=np.int64)
    targets = np.vstack([w for _, w in rows])
    r, c = np.nonzero(targets)
    return pd.DataFrame({"date": dates[days[r]], "ticker": tickers[c], "weight": targets[r, c]})
