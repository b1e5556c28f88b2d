"""Target weights -> orders in shares (E4), and the validation of what compute_weights returns (S1).

Orders are sized at the decision day's close: the investable value is equity x (1 - cash_buffer);
a held ticker whose weight moves less than `no_trade_band` is left alone (unless its target is
zero; new positions are always opened);
whole shares unless `fractional_shares`; trades under `min_trade_value` are skipped, except a
sale that closes a position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import Parameters
from ..errors import BadInputError


def validate_weights(
    weights,
    date: pd.Timestamp,
    tickers: np.ndarray,
    allowed: np.ndarray,
    priced: np.ndarray,
    max_leverage: float,
    source: str,
) -> np.ndarray:
    """Check the algorithm's output and return a dense weight vector over the panel's tickers.

    allowed: bool mask of tickers it may weight (universe members or current holdings).
    Raises BadInputError naming the day, the ticker and the rule broken.
    """
    where = f"{source}: compute_weights on {date:%Y-%m-%d}"
    if weights is None:
        return np.zeros(len(tickers))
    if isinstance(weights, dict):
        weights = pd.Series(weights, dtype=float)
    if not isinstance(weights, pd.Series):
        raise BadInputError(
            f"{where} returned {type(weights).__name__}; return a pandas Series "
            "indexed by ticker with target weights as values"
        )
    if weights.index.has_duplicates:
        dup = weights.index[weights.index.duplicated()][0]
        raise BadInputError(f"{where} returned ticker {dup!r} more than once")
    try:
        values = weights.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise BadInputError(
            f"{where} returned non-numeric weights; weights must be numbers"
        ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise BadInputError(
            f"{where} returned weight {values[k]} for {weights.index[k]!r}; "
            "weights must be finite numbers"
        )
    if (values < 0).any():
        k = int(np.flatnonzero(values < 0)[0])
        raise BadInputError(
            f"{where} returned negative weight {values[k]:g} for {weights.index[k]!r}; "
            "short positions are not allowed in this version"
        )
    if (values > max_leverage).any():
        k = int(np.flatnonzero(values > max_leverage)[0])
        raise BadInputError(
            f"{where} returned weight {values[k]:g} for {weights.index[k]!r}, above the "
            f"allowed leverage {max_leverage:g}"
        )
    nonzero = values != 0
    pos = pd.Index(tickers).get_indexer(weights.index[nonzero])
    names, vals = weights.index[nonzero], values[nonzero]
    outside = (pos < 0) | ~allowed[np.maximum(pos, 0)]
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise BadInputError(
            f"{where} returned weight {vals[k]:g} for {names[k]!r}, which is not in the "
            "universe on that day nor held; weight only view.universe or holdings"
        )
    unpriced = ~priced[pos]
    if unpriced.any():
        k = int(np.flatnonzero(unpriced)[0])
        raise BadInputError(
            f"{where} returned weight {vals[k]:g} for {names[k]!r}, which has no price yet"
        )
    out = np.zeros(len(tickers))
    out[pos] = vals
    total = out.sum()
    if total > max_leverage + 1e-9:
        raise BadInputError(
            f"{where} returned weights summing to {total:.6g}, above the allowed "
            f"leverage {max_leverage:g}; scale them down"
        )
    return out


def weights_to_orders(
    target: np.ndarray, shares: np.ndarray, cash: float, price: np.ndarray, params: Parameters
) -> np.ndarray:
    """Signed share quantities that move the portfolio from `shares` to `target` weights."""
    px = np.where(np.isfinite(price), price, 0.0)
    value = shares * px
    equity = cash + value.sum()
    if equity <= 0:
        return np.zeros_like(shares)
    current = value / equity
    target_value = target * equity * (1.0 - params.cash_buffer)
    with np.errstate(divide="ignore", invalid="ignore"):
        target_shares = np.where(px > 0, target_value / px, 0.0)
    if not params.fractional_shares:
        target_shares = np.floor(target_shares)
    orders = target_shares - shares
    keep = (np.abs(target - current) < params.no_trade_band) & (target > 0) & (shares != 0)
    closing = (target == 0) & (shares != 0)
    small = (np.abs(orders) * px < params.min_trade_value) & ~closing
    orders[keep | small | (px <= 0)] = 0.0
    orders[closing] = -shares[closing]
    return orders
