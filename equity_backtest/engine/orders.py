"""Target weights -> orders in shares (E4), and the validation of what compute_weights returns (S1).

compute_weights returns either a Series of target weights indexed by ticker, or a DataFrame with
a `weight` column and an optional `stop` column: a protective stop price per position (NaN: none).

Orders are sized at the decision day's close: the investable value is equity x (1 - cash_buffer);
a held ticker whose weight moves less than `no_trade_band` is left alone (unless its target is
zero; new positions are always opened); whole shares (rounded towards zero) unless
`fractional_shares`; trades under `min_trade_value` are skipped, except one that closes a position.
The orders are self-financing at the decision prices: if they would need more cash than the sells
free and the account may use, the buys are scaled down together.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..config import Parameters
from ..errors import BadInputError


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


EXIT_COLUMNS = ("stop", "target", "exit_after")


class _Where:
    """A message's opening, "<algorithm>: compute_weights on <day>", written only when a
    message is (a decision that passes every check never formats its day)."""

    __slots__ = ("source", "date")

    def __init__(self, source: str, date: pd.Timestamp):
        self.source, self.date = source, date

    def __format__(self, spec: str) -> str:
        return format(f"{self.source}: compute_weights on {self.date:%Y-%m-%d}", spec)

    def __str__(self) -> str:
        return format(self, "")


def validate_exits(
    decision, date: pd.Timestamp, tickers: np.ndarray, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Take-profit prices and time exits from a decision's optional 'target' and 'exit_after'
    columns, dense over the panel's tickers (NaN: none). Read for non-zero weights only;
    validate_weights has checked the rest of the decision."""
    n = len(tickers)
    targets, holds = np.full(n, np.nan), np.full(n, np.nan)
    if not isinstance(decision, pd.DataFrame) or not {"target", "exit_after"} & set(decision):
        return targets, holds
    where = _Where(source, date)
    rows = decision[pd.to_numeric(decision["weight"], errors="coerce").fillna(0) != 0]
    labels = tickers if isinstance(tickers, pd.Index) else pd.Index(tickers)
    pos = labels.get_indexer(rows.index)
    if "target" in rows:
        tv = pd.to_numeric(rows["target"], errors="coerce").to_numpy(dtype=float)
        targets[pos] = _prices(tv, rows.index, where, "target", "a take-profit target")
    if "exit_after" in rows:
        hv = pd.to_numeric(rows["exit_after"], errors="coerce").to_numpy(dtype=float)
        bad = np.isfinite(hv) & ((hv < 1) | (hv != np.round(hv)))
        if bad.any():
            k = _first(bad)
            raise BadInputError(
                f"{where} returned exit_after {hv[k]:g} for {rows.index[k]!r}; a time exit is "
                "a whole number of bars >= 1 after this decision (or NaN for none)"
            )
        holds[pos] = hv
    return targets, holds


def validate_weights(
    weights,
    date: pd.Timestamp,
    tickers: np.ndarray,
    allowed: np.ndarray,
    priced: np.ndarray,
    max_leverage: float,
    source: str,
    allow_short: bool = False,
    universe: tuple[pd.Index, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check the algorithm's output; return dense (weights, stops) vectors over the panel's tickers.

    allowed: bool mask of tickers it may weight (universe members or current holdings).
    universe: the Index the view handed out as view.universe and its mask over the tickers; a
    decision indexed by that very Index needs no lookup of its labels (the common case).
    Raises BadInputError naming the day, the ticker and the rule broken.
    """
    where = _Where(source, date)
    stops = np.full(len(tickers), np.nan)
    stop_values = None
    if isinstance(weights, dict):
        weights = pd.Series(weights, dtype=object)  # numbers are checked below, with a message
    if isinstance(weights, pd.DataFrame):
        if "weight" not in weights.columns:
            raise BadInputError(f"{where} returned a DataFrame without a 'weight' column")
        unknown = set(weights.columns) - {"weight", *EXIT_COLUMNS}
        if unknown:
            raise BadInputError(
                f"{where} returned unknown column(s) {sorted(unknown)}; "
                "use 'weight' and optionally 'stop', 'target' and 'exit_after'"
            )
        if "stop" in weights.columns:
            stop_values = pd.to_numeric(weights["stop"], errors="coerce").to_numpy(dtype=float)
        weights = weights["weight"]
    if not isinstance(weights, pd.Series):
        raise BadInputError(
            f"{where} returned {type(weights).__name__}; return a pandas Series "
            "indexed by ticker with target weights as values"
        )
    names = weights.index
    pos = _positions(names, tickers, universe)
    if pos is None:
        dup = names[names.duplicated()][0]
        raise BadInputError(f"{where} returned ticker {dup!r} more than once")
    try:
        values = weights.to_numpy(dtype=float)
    except (TypeError, ValueError):
        bad = next((k, v) for k, v in weights.items() if not isinstance(v, int | float | np.number))
        raise BadInputError(
            f"{where} returned weight {bad[1]!r} for {bad[0]!r}; weights must be numbers"
        ) from None
    if not np.isfinite(values).all():
        k = _first(~np.isfinite(values))
        raise BadInputError(
            f"{where} returned weight {values[k]} for {names[k]!r}; weights must be finite numbers"
        )
    if not allow_short and (values < 0).any():
        k = _first(values < 0)
        raise BadInputError(
            f"{where} returned negative weight {values[k]:g} for {names[k]!r}; "
            "set allow_short = True in parameters.py to sell short"
        )
    if (np.abs(values) > max_leverage).any():
        k = _first(np.abs(values) > max_leverage)
        raise BadInputError(
            f"{where} returned weight {values[k]:g} for {names[k]!r}, above the "
            f"allowed leverage {max_leverage:g}"
        )
    nonzero = values != 0
    pos, vals = pos[nonzero], values[nonzero]
    outside = (pos < 0) | ~allowed[np.maximum(pos, 0)]
    if outside.any():
        k = _first(outside)
        raise BadInputError(
            f"{where} returned weight {vals[k]:g} for {names[nonzero][k]!r}, which is not in "
            "the universe on that day nor held; weight only view.universe or holdings"
        )
    if (~priced[pos]).any():
        k = _first(~priced[pos])
        raise BadInputError(
            f"{where} returned weight {vals[k]:g} for {names[nonzero][k]!r}, which has no price yet"
        )
    gross = float(np.abs(vals).sum())
    if gross > max_leverage + 1e-9:
        raise BadInputError(
            f"{where} returned weights whose absolute values sum to {gross:.6g}, above "
            f"the allowed leverage {max_leverage:g}; scale them down"
        )
    out = np.zeros(len(tickers))
    out[pos] = vals
    if stop_values is not None:
        stops[pos] = _prices(stop_values[nonzero], names[nonzero], where, "stop", "a stop")
    return out, stops


def _positions(
    names: pd.Index, tickers: np.ndarray, universe: tuple[pd.Index, np.ndarray] | None
) -> np.ndarray | None:
    """Each decision label's column in the panel (-1: not a ticker of it), or None when a label
    comes twice. The view's own universe Index is already known to be unique, and its columns are
    its mask's; other labels are looked up once."""
    if universe is not None and names is universe[0]:
        return np.flatnonzero(universe[1])
    labels = tickers if isinstance(tickers, pd.Index) else pd.Index(tickers)
    pos = labels.get_indexer(names)
    known = pos >= 0
    if np.bincount(pos[known], minlength=1).max() > 1:
        return None
    if not known.all() and names[~known].has_duplicates:
        return None
    return pos


def _prices(values: np.ndarray, names, where: str, column: str, what: str) -> np.ndarray:
    """An exit column's prices: positive, or NaN for none."""
    bad = np.isfinite(values) & (values <= 0)
    if bad.any():
        k = _first(bad)
        raise BadInputError(
            f"{where} returned {column} {values[k]:g} for {names[k]!r}; {what} is a positive "
            "price (or NaN for none)"
        )
    return values


def borrowing_room(max_leverage: float, equity: float) -> float:
    """How much cash may be borrowed: (max_leverage - 1) x equity, none once equity is gone.
    The one home of the leverage rule that order sizing, the broker's cash floor and the
    orders' invariant check all apply."""
    return (max_leverage - 1.0) * max(equity, 0.0)


@dataclasses.dataclass(frozen=True)
class OrderRules:
    """What order sizing reads from the settings, built once per run (not the whole
    Parameters): the cash buffer, the no-trade band, whole or fractional shares, the minimum
    trade value and the leverage limit."""

    cash_buffer: float
    no_trade_band: float
    fractional_shares: bool
    min_trade_value: float
    max_leverage: float

    @classmethod
    def of(cls, params: Parameters) -> OrderRules:
        return cls(
            params.cash_buffer,
            params.no_trade_band,
            params.fractional_shares,
            params.min_trade_value,
            params.max_leverage,
        )


def weights_to_orders(
    target: np.ndarray,
    shares: np.ndarray,
    cash: float,
    price: np.ndarray,
    rules: OrderRules | Parameters,
) -> np.ndarray:
    """Signed share quantities that move the portfolio from `shares` to `target` weights."""
    params = rules if isinstance(rules, OrderRules) else OrderRules.of(rules)
    px = np.where(np.isfinite(price), price, 0.0)
    value = shares * px
    equity = cash + value.sum()
    if equity <= 0:
        return np.zeros_like(shares)
    current = value / equity
    target_value = target * equity * (1.0 - params.cash_buffer)
    priced = px > 0
    target_shares = np.divide(target_value, px, out=np.zeros_like(target_value), where=priced)
    if not params.fractional_shares:
        target_shares = np.trunc(target_shares)
    orders = target_shares - shares
    held = shares != 0
    skip = ~priced
    if params.no_trade_band > 0:  # (|a difference| < 0 never holds)
        skip |= (np.abs(target - current) < params.no_trade_band) & (target != 0) & held
    if params.min_trade_value > 0:
        skip |= np.abs(orders) * px < params.min_trade_value  # (a close is set again below)
    orders[skip] = 0.0
    closing = (target == 0) & held
    orders[closing] = -shares[closing]
    # self-financing at the decision prices: buys scaled to the cash the sells and account allow
    # (positions kept inside the no-trade band can leave less than the targets assume)
    room = cash + borrowing_room(params.max_leverage, equity)
    buys = orders > 0
    need_buys = float(orders[buys] @ px[buys])
    need = need_buys + float(orders[~buys] @ px[~buys])
    if need > room and need_buys > 0:
        factor = max(room - (need - need_buys), 0.0) / need_buys
        orders[buys] *= factor
        if not params.fractional_shares:
            orders[buys] = np.floor(orders[buys])
    return orders
