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
from .loop_state import COL, RUNTIME_COLUMNS, LoopState
from .orders import borrowing_room, validate_exits, validate_weights, weights_to_orders
from .positions import held_positions
from .spec import EngineSpec
from .view import View

log = logging.getLogger(__name__)


class InvariantError(BacktestError):
    """An engine invariant broke (E11): a bug, reported with the day and the numbers."""

    exit_code = 1


@dataclasses.dataclass
class RunResult:
    """A run's outcome. Its tables (trades, cash ledger, target weights, daily positions) are
    built from the books on first use: a sweep that reads only values never pays for them."""

    runtime_log: pd.DataFrame
    tables: dict[str, Callable[[], pd.DataFrame]]  # table name -> what builds it
    status: str  # "completed" or "stopped: equity exhausted"
    message: str
    warnings: list[str] = dataclasses.field(default_factory=list)
    starting_value: float = 0.0  # cash + starting holdings at the close before the first heartbeat
    bar_frequency: str = "daily"  # each heartbeat is one bar of the data (frequency module)

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        return self.tables["trades"]()

    @functools.cached_property
    def cash_ledger(self) -> pd.DataFrame:
        return self.tables["cash_ledger"]()

    @functools.cached_property
    def target_weights(self) -> pd.DataFrame:
        return self.tables["target_weights"]()

    @functools.cached_property
    def positions(self) -> pd.DataFrame:
        """Daily holdings in long format (positions_table): millions of rows in a long run."""
        return self.tables["positions"]()


def make_broker(params: Parameters) -> Broker:
    return EngineSpec.of(params).broker()


class Heartbeat:
    """One trading day of the loop, a method per numbered step of the module docstring. Reads the
    panel and the spec; changes only the LoopState."""

    def __init__(self, panel: Panel, spec: EngineSpec, state: LoopState, t0: int):
        self.panel, self.spec, self.state, self.t0 = panel, spec, state, t0
        self.dates, self.fields = panel.dates, panel.fields
        self.fill_px, self.volume = self.fields[spec.fill_timing], self.fields["volume"]
        self.mark0, self.priced = panel.mark_or_zero, panel.priced
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
        # below this, equity cannot pay a minimum commission: trading stops
        self.least_equity = max(1e-9 * spec.starting_cash, spec.costs.commission_min)
        self._decisions: tuple[np.ndarray, np.ndarray] | None = None  # (rebalance, its days)
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
            row[COL["dividends"]] = st.ledger.dividend(t, *ev.dividends[t])
        if t in ev.delistings:
            idx, value = ev.delistings[t]
            row[COL["delisting_proceeds"]] = st.ledger.delist(t, idx, value)
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
        traded = fills.shares * fills.mid
        commission, slippage = fills.commission.sum(), fills.slippage.sum()
        costs = float(commission + slippage)  # (Fills.costs, its sums taken once)
        _check_fill(t, self.dates, fills, before, floor, float(traded.sum()), costs)
        st.ledger.apply(t, fills, reason)
        row = self.row(t)
        row[COL["fills"]] += np.count_nonzero(fills.shares)
        row[COL["bought"]] += traded[traded > 0].sum()
        row[COL["sold"]] -= traded[traded < 0].sum()
        row[COL["commission"]] += commission
        row[COL["slippage"]] += slippage
        st.costs_paid += costs
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
            self.row(t)[COL["stops"]] += np.count_nonzero(fills.shares)
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
            row[COL["interest"]] = ledger.cash_flow(t, "interest", ledger.cash * self.rf)
        elif ledger.cash < 0:
            row[COL["interest"]] = ledger.cash_flow(t, "interest", ledger.cash * self.borrow_rate)
        if self.spec.allow_short:
            short_value = -float(np.minimum(ledger.shares, 0.0) @ self.mark0[t])
            if short_value > 0:
                row[COL["short_fees"]] = -ledger.cash_flow(
                    t, "short_fee", -short_value * self.short_fee
                )

    # 4. mark to market; returns the message that stops trading when equity is gone
    def mark(self, t: int) -> str | None:
        st, row = self.state, self.row(t)
        holdings = float(st.ledger.shares.dot(self.mark0[t]))
        value = st.ledger.cash + holdings
        row[COL["value"]], row[COL["cash"]], row[COL["holdings_value"]] = (
            value,
            st.ledger.cash,
            holdings,
        )
        row[COL["positions"]] = np.count_nonzero(st.ledger.shares)
        st.held.hold(t - self.t0, st.ledger.shares)
        st.prev_value = value
        return None if value > self.least_equity else self._gone(t, value)

    def _gone(self, t: int, value: float) -> str:
        spec, paid = self.spec, self.state.costs_paid
        return (
            f"portfolio equity is gone on {self.dates[t]:%Y-%m-%d}: value {value:.2f} cannot pay "
            f"a minimum commission of {spec.costs.commission_min:g}; trading stopped. Costs paid "
            f"so far: {paid:,.2f} ({paid / spec.starting_cash:.0%} of the starting value)"
        )

    # quiet days: steps 1, 3 and 4 alone, many days at a time
    def quiet_until(self, t: int, limit: int, rebalance: np.ndarray) -> int:
        """The first day in [t, limit) that is not quiet (limit if none; t if t is not).

        A quiet day has no decision, no order waiting and no stop, target or time exit to watch:
        nothing can trade, so all it does is apply the day's corporate actions, book financing
        and mark the books to market, which coast() does for a run of such days with no
        per-day call of the fill and decision steps."""
        st = self.state
        if self.watching or self.timed or st.pending.any():
            return t
        if self._decisions is None or self._decisions[0] is not rebalance:
            self._decisions = (rebalance, np.flatnonzero(rebalance))
        days = self._decisions[1]
        k = int(np.searchsorted(days, t))  # the first decision on or after t
        return min(limit, int(days[k])) if k < len(days) else limit

    def coast(self, t: int, end: int) -> tuple[int, str | None]:
        """Quiet days t..end-1, each as step() would do it: the day's corporate actions,
        financing, then the mark (the same sums, in the same order). Returns the last day done,
        which is the day equity is gone if it goes (with the message that stops trading), else
        end - 1."""
        st, ev, least = self.state, self.panel.events, self.least_equity
        dividends, splits, delistings = ev.dividends, ev.splits, ev.delistings
        ledger = st.ledger
        # financing books nothing on a day whose cash is not negative, unless interest on cash
        # or short fees are on
        financed = self.spec.cash_interest or self.spec.allow_short
        k, cash, held, gone = t - self.t0, [], [], None
        since = k  # the first day holding the shares held now (a split or delisting changes them)
        for u, marks in enumerate(self.mark0[t:end], t):
            if u in splits or u in delistings:
                self._held(since, u - self.t0)
                since = u - self.t0
                self.corporate_actions(u)
            elif u in dividends:
                st.log_rows[u - self.t0, COL["dividends"]] = ledger.dividend(u, *dividends[u])
            if financed or ledger.cash < 0:
                self.financing(u)
            holdings = float(ledger.shares.dot(marks))  # (the dot product mark() takes)
            cash.append(ledger.cash)
            held.append(holdings)
            if not ledger.cash + holdings > least:
                gone = self._gone(u, ledger.cash + holdings)
                break
        n = len(cash)
        self._held(since, k + n)
        rows = st.log_rows[k : k + n]
        rows[:, COL["cash"]], rows[:, COL["holdings_value"]] = cash, held
        rows[:, COL["value"]] = rows[:, COL["cash"]] + rows[:, COL["holdings_value"]]
        st.prev_value = float(rows[-1, COL["value"]])
        return t + n - 1, gone

    def _held(self, first: int, stop: int) -> None:
        """The books' rows first..stop-1 (from the first heartbeat) hold the shares held now."""
        st = self.state
        if stop > first:
            st.held.hold(first, st.ledger.shares)
            st.log_rows[first:stop, COL["positions"]] = np.count_nonzero(st.ledger.shares)

    # 5. on a rebalance day, the algorithm's target weights become tomorrow's orders
    def decide(self, t: int, compute_weights: Callable, params: Parameters, name: str) -> None:
        st, spec, panel = self.state, self.spec, self.panel
        self.row(t)[COL["rebalance"]] = 1
        view = View(panel, t, st.ledger.shares, st.ledger.cash, spec.lookback_days)
        decision = _call(compute_weights, view, params, name)
        if decision is None:  # leave the portfolio (and its stops) as it is
            return
        allowed = panel.members(t) | (st.ledger.shares != 0)
        date = self.dates[t]
        target, st.stop = validate_weights(
            decision, date, panel.labels, allowed, self.priced[t], spec.orders.max_leverage,
            name, spec.allow_short, view.given_universe,
        )  # fmt: skip
        st.take_profit, holds = validate_exits(decision, date, panel.labels, name)
        st.exit_day = np.full(len(holds), -1, dtype=np.int64)
        if isinstance(decision, pd.DataFrame):
            # a time exit of N bars: closed at the fill N bars after this decision (an order
            # made now fills at the next bar, so a new position is held N - 1 bars)
            timed = np.isfinite(holds)
            st.exit_day[timed] = t + holds[timed]
            self._exits_set()
        else:  # weights alone set no stop, target or time exit: none to watch
            self.watching = self.timed = False
        st.weight_rows.append((t, target))
        st.pending = weights_to_orders(
            target, st.ledger.shares, st.ledger.cash, panel.mark[t], spec.orders
        )
        _check_orders(
            t, self.dates, st.pending, self.mark0[t], st.ledger.cash, st.prev_value,
            spec.orders.max_leverage,
        )  # fmt: skip
        self.row(t)[COL["orders"]] = np.count_nonzero(st.pending)


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
    bar = tqdm(total=t1 + 1 - first, desc="trading", unit="day", disable=not progress, leave=False)
    t = first
    while t <= t1:
        faults.point("heartbeat")
        if checkpoints and t > first and checkpoints.due(t - t0):
            state.save(checkpoints, t, t0)
        quiet = day.quiet_until(t, _next_checkpoint(t, t0, t1, checkpoints), rebalance)
        if quiet > t:  # a run of quiet days (each still a heartbeat that a kill may stop)
            done, gone = day.coast(t, quiet)
            for _ in range(t + 1, done + 1):
                faults.point("heartbeat")
        else:
            done, gone = t, day.step(t, rebalance[t], compute_weights, params, algorithm_name)
        bar.update(done + 1 - t)
        if gone:
            status, message, last = "stopped: equity exhausted", gone, done
            log.warning(message)
            break
        t = done + 1
    bar.close()

    n = last - t0 + 1
    columns = {"date": dates[t0 : last + 1]}
    columns |= {name: state.log_rows[:n, k] for k, name in enumerate(RUNTIME_COLUMNS[1:])}
    columns["rebalance"] = columns["rebalance"].astype(bool)
    for col in ("positions", "orders", "fills", "stops"):
        columns[col] = columns[col].astype(np.int64)
    runtime = pd.DataFrame(columns)  # (column by column: no frame built and then converted)
    tables = {
        "trades": functools.partial(state.ledger.trades_table, dates, panel.tickers),
        "cash_ledger": functools.partial(state.ledger.cash_table, dates, panel.tickers),
        "target_weights": functools.partial(_weights, state.weight_rows, dates, panel.tickers),
        "positions": functools.partial(
            held_positions, state.held, n, panel, t0, state.log_rows[:n, COL["value"]]
        ),
    }
    return RunResult(
        runtime,
        tables,
        status,
        message,
        state.warnings,
        state.starting_value,
        day.bar_frequency,
    )


def _next_checkpoint(t: int, t0: int, t1: int, checkpoints: Checkpoints | None) -> int:
    """The next day after t on which a checkpoint may be due (t1 + 1 if none): a run of quiet
    days stops before it, so that the state saved there is the one before that day."""
    if not checkpoints or checkpoints.every <= 0:
        return t1 + 1
    return min(t1 + 1, t + checkpoints.every - (t - t0) % checkpoints.every)


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


def _check_fill(
    t: int, dates, fills: Fills, cash_before: float, floor: float, traded: float, costs: float
) -> None:
    """E11: value is conserved across a fill (cash change + shares x reference price =
    -(commission + price costs)), and the fills do not take cash below its floor. `traded` is
    the sum of shares x reference price and `costs` Fills.costs, both taken once by the caller."""
    cash_flow = fills.cash_flow
    lhs = cash_flow + traded
    rhs = -costs
    scale = max(1.0, abs(cash_before))
    if abs(lhs - rhs) > 1e-6 * scale:
        raise InvariantError(
            f"value not conserved by fills on {dates[t]:%Y-%m-%d}: {lhs:.6f} != {rhs:.6f}"
        )
    # a levered book whose equity fell may start the day below its floor (no trade put it
    # there): then the fills must not take cash lower still
    if cash_before + cash_flow < min(floor, cash_before) - 1e-6 * scale:
        raise InvariantError(
            f"cash went below its floor ({cash_before + cash_flow:.2f} < {floor:.2f}) on "
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


def _weights(rows: list[tuple[int, np.ndarray]], dates, tickers) -> pd.DataFrame:
    """Target weights in long format (non-zero only), rebalance by rebalance in ticker order."""
    if not rows:
        return pd.DataFrame(columns=["date", "ticker", "weight"])
    days = np.array([t for t, _ in rows], dtype=np.int64)
    targets = np.vstack([w for _, w in rows])
    r, c = np.nonzero(targets)
    return pd.DataFrame({"date": dates[days[r]], "ticker": tickers[c], "weight": targets[r, c]})
