"""Bloomberg's capital changes as the engine's corporate actions (D3): DVD_HIST_ALL's rows by
their "Dividend Type", and a spin-off's value from the price adjustment factor Bloomberg
applies on its ex-date (EQY_DVD_ADJUST_FACT).

    Stock Split, Stock Dividend, Bonus  -> split (new shares per old share; a stock dividend's
                                           or bonus's fraction f is 1 + f)
    cash types (CASH_TYPES)             -> dividend (cash per share on the ex-date)
    Spinoff                             -> dividend at the distributed shares' value, where the
                                           adjustment factor gives it; else unvalued
    Rights Issue, Omitted, ...          -> logged unapplied under their kind and counted
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from ...errors import VendorUnavailableError

log = logging.getLogger(__name__)

SPLIT_TYPES = ("Stock Split", "Stock Dividend", "Bonus")
CASH_TYPES = (
    "Regular Cash", "Special Cash", "Interim", "Final", "Income", "Return of Capital",
    "Return of Cap", "Long Term Cap Gain", "Short Term Cap Gain", "Partnership Dist",
    "Pro Rata", "Estimated", "Memo", "Distribution",
)  # fmt: skip
SPINOFF = "Spinoff"
# logged unapplied under a kind of vocabulary.UNAPPLIED_DISTRIBUTIONS and counted
UNAPPLIED_TYPES = {
    SPINOFF: "unvalued",  # DVD_HIST_ALL gives the share ratio, not the distributed shares' value
    "Rights Issue": "rights",
    "Omitted": "notice",
    "Cancelled": "notice",
    "Discontinued": "notice",
}
# the bulk field of the factors Bloomberg adjusts earlier prices by, one row per event: date,
# factor, and how it applies to prices (operator type 1: divide by it, 2: multiply, 3: add,
# 4: subtract)
ADJUSTMENT_FIELD = "EQY_DVD_ADJUST_FACT"
DIVIDE, MULTIPLY, ADD, SUBTRACT = 1, 2, 3, 4


def column(frame: pd.DataFrame, part: str, what: str, required: bool = True) -> str | None:
    """The first column of a bulk answer whose name holds `part` (xbbg names them in
    snake case: "Dividend Type" is dividend_type)."""
    hits = [c for c in frame.columns if part in str(c).lower()]
    if not hits and required:
        raise VendorUnavailableError(
            f"{what}: no '{part}' column in the answer ({list(frame.columns)})"
        )
    return hits[0] if hits else None


def _named(frame: pd.DataFrame, name: str) -> str | None:
    """The column called `name` in snake case, however the answer spells it (None: absent)."""
    for c in frame.columns:
        if str(c).strip().lower().replace(" ", "_").replace("-", "_") == name:
            return c
    return None


def actions(raw: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """DVD_HIST_ALL rows -> corporate_actions rows on the ex-date: cash types as dividends, share
    ratios as splits, the rest unapplied under their kind (UNAPPLIED_TYPES; an unknown type is
    "unvalued"). Column `kind` keeps the Dividend Type (dropped before logging)."""
    columns = ["date", "action", "value", "kind"]
    if raw.empty:
        return pd.DataFrame(columns=columns)
    ex = column(raw, "ex_date", "DVD_HIST_ALL")
    amount = column(raw, "amount", "DVD_HIST_ALL")
    kind = column(raw, "type", "DVD_HIST_ALL")
    kinds = raw[kind].astype(str).str.strip()
    value = pd.to_numeric(raw[amount], errors="coerce")
    # a split's amount is its ratio (0.1 for a 1-for-10 reverse split); a stock dividend's or
    # bonus issue's fraction f (0.05 for 5%) is 1 + f shares per share
    fraction = kinds.isin(("Stock Dividend", "Bonus")) & (value < 1)
    action = kinds.map(
        lambda k: "split" if k in SPLIT_TYPES else "dividend" if k in CASH_TYPES
        else UNAPPLIED_TYPES.get(k, "unvalued")
    )  # fmt: skip
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(raw[ex], errors="coerce"),
            "action": action,
            "value": value.where(~fraction, 1 + value),
            "kind": kinds,
        }
    )
    applied = frame["action"].isin(["split", "dividend"])
    inside = frame["date"].between(pd.Timestamp(start), pd.Timestamp(end))
    frame = frame[inside & (frame["value"].notna() | ~applied)]  # an applied one needs its amount
    return frame.sort_values(["date", "action"], kind="stable").reset_index(drop=True)


def value_spinoffs(booked: pd.DataFrame, factors: pd.DataFrame, closes: pd.Series) -> pd.DataFrame:
    """Each spin-off valued from the factor Bloomberg adjusts earlier prices by on its ex-date:
    a price factor f (multiplied; 1 / the factor where it divides) means the distributed shares
    were worth (1 - f) x the last raw close before the ex-date (a subtracted amount is the value
    itself), paid to holders as cash on the ex-date, as CRSP values a distribution of property.
    A split on the same day is taken out of the day's factor first. `closes`: raw closes by
    date, in the currency the prices were asked in (so the value needs no conversion). A
    spin-off with no factor, or none that gives a value between 0 and the close, stays
    unvalued."""
    spun = booked.index[(booked["kind"] == SPINOFF) & (booked["action"] == "unvalued")]
    if not len(spun) or factors.empty or closes.empty:
        return booked
    names = ("adjustment_date", "adjustment_factor", "adjustment_factor_operator_type")
    found = [_named(factors, n) for n in names]
    if None in found:  # (a shape not confirmed on a terminal: said, and nothing guessed)
        log.warning("%s answered without the columns %s (it has %s): spin-offs stay unvalued",
                    ADJUSTMENT_FIELD, ", ".join(names), list(factors.columns))  # fmt: skip
        return booked
    on = pd.to_datetime(factors[found[0]], errors="coerce")
    factor = pd.to_numeric(factors[found[1]], errors="coerce")
    operator = pd.to_numeric(factors[found[2]], errors="coerce")
    out = booked.copy()
    for i in spun:
        day = out.at[i, "date"]
        before = closes[closes.index < day]
        if before.empty:
            continue
        close = float(before.iloc[-1])
        mine = (on == day).to_numpy()
        split = out.loc[(out["date"] == day) & (out["action"] == "split"), "value"].prod()
        price_factor = (
            np.prod(
                [
                    1 / f if op == DIVIDE else f
                    for f, op in zip(factor[mine], operator[mine], strict=True)
                    if op in (DIVIDE, MULTIPLY)
                ]  # fmt: skip
            )
            * split
        )  # (a split's own factor is 1 / its ratio)
        taken = float(factor[mine & (operator == SUBTRACT).to_numpy()].sum())
        value = taken if taken > 0 else close * (1 - price_factor)
        if mine.any() and 0 < value < close:
            out.at[i, "action"], out.at[i, "value"] = "dividend", value
            log.info("spin-off on %s valued from %s at %.6g a share (the close before: %.6g)",
                     f"{day:%Y-%m-%d}", ADJUSTMENT_FIELD, value, close)  # fmt: skip
    return out


def say_unapplied(booked: pd.DataFrame) -> None:
    """One warning naming what is logged but not applied (counted in the quality report)."""
    odd = booked.loc[~booked["action"].isin(["split", "dividend"]), "kind"]
    if len(odd):
        log.warning("DVD_HIST_ALL types logged but not applied (counted in the quality report): %s",
                    ", ".join(f"{n} {k}" for k, n in odd.value_counts().sort_index().items()))  # fmt: skip
