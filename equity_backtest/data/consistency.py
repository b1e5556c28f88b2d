"""What a vendor reports that only makes sense across tables or against what we know of the
vendor (D9, D3): whether its fundamentals are as first reported, point in time or restated; the
distributions it reported that the engine does not apply; whether its market caps are in the
units of its prices and shares. The quality report (quality.py) includes each; the panel reads
the first to delay restated figures (restated_lag_days)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .vocabulary import (
    POINT_IN_TIME,
    RESTATED_FUNDAMENTALS,
    SCREEN_RECORDS,
    UNAPPLIED_DISTRIBUTIONS,
)


def fundamentals_vintage(metadata: pd.DataFrame, source: str) -> str | None:
    """What a source's fundamentals are where it is known they are not simply as first reported
    at their dates: point in time or as restated where its metadata says so, else as restated
    where the vocabulary knows the source's are; else None."""
    if "fundamentals" in metadata:
        said = metadata.loc[metadata["source"] == source, "fundamentals"].astype(str)
        if (said == POINT_IN_TIME).any():
            return POINT_IN_TIME
        restated = said[said.str.startswith("as restated")]
        if len(restated):  # (a vendor that found its fundamentals restated, e.g. Bloomberg's)
            return str(restated.iloc[0])
    return RESTATED_FUNDAMENTALS.get(source)


def unapplied_distributions(ca: pd.DataFrame) -> dict:
    """The distributions a vendor reported that the engine does not apply (vocabulary's
    UNAPPLIED_DISTRIBUTIONS), counted by kind with examples; absent when there are none."""
    return _counted(ca, UNAPPLIED_DISTRIBUTIONS, "unapplied_distributions")


def vendor_screens(ca: pd.DataFrame) -> dict:
    """What a vendor's screens found at 01 (vocabulary's SCREEN_RECORDS), by screen: how many
    records, the sum of their values (days removed, for the padding screens) and examples;
    absent when there are none."""
    return _counted(ca, SCREEN_RECORDS, "vendor_screens")


def _counted(ca: pd.DataFrame, kinds: tuple[str, ...], key: str) -> dict:
    action = ca["action"].astype(str)
    rows = ca[action.isin(kinds).to_numpy()]
    if rows.empty:
        return {}
    out = {}
    for kind, group in rows.groupby(rows["action"].astype(str), sort=True):
        examples = group.sort_values(["date"]).head(5)
        out[kind] = {
            "count": len(group),
            "value_sum": float(group["value"].sum()),
            "examples": [
                {"ticker": str(t), "date": f"{d:%Y-%m-%d}", "value": float(v)}
                for t, d, v in zip(
                    examples["ticker"], examples["date"], examples["value"], strict=True
                )
            ],
        }
    return {key: out}


def market_cap_units(mk, shares: pd.DataFrame, days=None, has_caps: bool = True) -> dict:
    """Whether market caps are in the same units as prices x shares: at each reported period
    end, a ticker's market cap against its close times the shares outstanding it reported. A
    median far from 1 (1e-6: caps in millions; 1e3: shares in thousands) means a vendor's units
    were not normalised, which silently breaks cap weights and any ratio of the two.
    `mk`: the source's market rows; or, for a table kept in parts, a function of some days giving
    the rows of those days, with `days` (the source's trading days, sorted) and `has_caps`.
    `shares`: the shares outstanding the source reported (fundamentals_checks.shares_outstanding)."""
    if not callable(mk):
        frame = mk
        has_caps = "market_cap" in frame and frame["market_cap"].notna().any()
        days = np.sort(pd.unique(frame["date"].to_numpy()))
        mk = lambda wanted: frame[frame["date"].isin(wanted)]  # noqa: E731
    if shares.empty or not has_caps:
        return no_caps()
    return units_verdict(cap_ratios(mk, shares, days))


def no_caps() -> dict:
    """market_cap_units' verdict where nothing can be compared (a new dict each time: it goes
    into a report that callers may change)."""
    return {"checked": 0, "why": "no market caps, or no shares_outstanding reported"}


def cap_ratios(mk, shares: pd.DataFrame, days) -> pd.DataFrame:
    """market_cap_units' ratios: (ticker, the day compared, ratio) of each period end of
    `shares` whose ratio is finite and positive. `mk`, `days`: as market_cap_units takes them
    for a table in parts."""
    # each period end's last trading day: only the market rows of those days are compared, so a
    # CRSP-sized table is not copied whole (a few hundred days of it)
    days = np.asarray(days)
    at = np.searchsorted(days, shares["period_end"].to_numpy(), side="right") - 1
    left = pd.DataFrame(
        {"ticker": _text(shares["ticker"]), "date": days[np.maximum(at, 0)],
         "shares": shares["value"].to_numpy(dtype=float)}
    )[at >= 0]  # fmt: skip
    rows = mk(np.unique(left["date"]))
    right = pd.DataFrame(
        {"ticker": _text(rows["ticker"]), "date": rows["date"].to_numpy(),
         "close": rows["close"].to_numpy(dtype=float),
         "cap": rows["market_cap"].to_numpy(dtype=float)}
    )  # fmt: skip
    both = _looked_up(left, right, days)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (both["cap"] / (both["close"] * both["shares"])).to_numpy()
    good = np.isfinite(ratio) & (ratio > 0)
    return pd.DataFrame(
        {"ticker": pd.Series(both["ticker"].to_numpy()[good], dtype=object),
         "date": both["date"].to_numpy()[good], "ratio": ratio[good]}
    )  # fmt: skip


def units_verdict(ratios: pd.DataFrame) -> dict:
    """market_cap_units' verdict from cap_ratios' rows (of one table, or joined from its parts:
    medians and the tickers' order do not depend on the rows' order)."""
    if not len(ratios):
        return {"checked": 0, "why": "no period end with a price, a market cap and shares"}
    ratio = ratios["ratio"].to_numpy(dtype=float)
    median = float(np.median(ratio))
    by_ticker = pd.Series(ratio).groupby(ratios["ticker"].to_numpy(object)).median()
    far = by_ticker[(by_ticker < 0.5) | (by_ticker > 2)]
    return {
        "checked": len(ratio),
        "median_ratio": round(median, 6),
        "consistent": bool(0.5 <= median <= 2),
        "tickers_off": int(len(far)),
        "examples": [
            {"ticker": str(t), "ratio": round(float(r), 6)} for t, r in far.head(5).items()
        ],
    }


def _text(column: pd.Series) -> np.ndarray:
    """A column's values as Python strings (object), without pandas 3's round trip through its
    string type where they are strings already (a million tickers: a tenth of a second)."""
    values = column.to_numpy()
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    return column.astype(str).to_numpy()


def pairs_in(pairs: tuple[np.ndarray, np.ndarray], among: tuple[np.ndarray, np.ndarray]):
    """Bool per pair (an integer key, a text key) of `pairs`: whether it is among `among`'s
    pairs. (What an inner merge on both keys finds, without pandas factorizing text twice.)"""
    text, _ = pd.factorize(np.concatenate([pairs[1], among[1]]))
    width = int(text.max()) + 1 if len(text) else 1
    key = np.asarray(pairs[0], dtype=np.int64) * width + text[: len(pairs[1])]
    return np.isin(key, np.asarray(among[0], dtype=np.int64) * width + text[len(pairs[1]) :])


def _looked_up(left: pd.DataFrame, right: pd.DataFrame, days: np.ndarray) -> pd.DataFrame:
    """left.merge(right, on=["ticker", "date"], how="left") where right has one row per
    ticker and day and every date is one of `days` (sorted): each left row gets its right row's
    other columns by an integer key instead of a merge on text."""
    text, _ = pd.factorize(np.concatenate([left["ticker"].to_numpy(), right["ticker"].to_numpy()]))
    dates = np.concatenate([left["date"].to_numpy(), right["date"].to_numpy()])
    day = np.searchsorted(days, dates)
    exact = day < len(days)
    exact[exact] = days[day[exact]] == dates[exact]
    keys = np.where(exact, text * len(days) + day, -1 - np.arange(len(dates)))  # (-: no day)
    at = pd.Index(keys[len(left) :])
    if not at.is_unique:  # (not from a dataset: the merge, whatever it gives)
        return left.merge(right, on=["ticker", "date"], how="left")
    pos = at.get_indexer(keys[: len(left)])
    found = pos >= 0
    out = left.copy()
    for column in right.columns.drop(["ticker", "date"]):
        values = right[column].to_numpy(dtype=float)
        out[column] = np.where(found, values[np.maximum(pos, 0)], np.nan)
    return out


# a member whose first price comes more than this after its first list: not a late start of data
LATE_PRICES = pd.Timedelta(days=31)


def members_before_prices(
    cons: pd.DataFrame, first_price: pd.Series, metadata: pd.DataFrame
) -> dict:
    """Index members listed before their security traded: the first price more than LATE_PRICES
    after the first list naming the ticker, or a listing date (metadata's `listing_date`, e.g.
    Bloomberg's EQY_INIT_PO_DT) after it. The usual cause is a reused ticker: the list named a
    company that died, and the ticker now names another, listed later, whose prices the vendor
    gave; the dead company's own months then have no prices, and its returns are lost (a
    survivorship gap). Absent when there are none."""
    if cons.empty:
        return {}
    listed = cons.groupby("ticker", observed=True)["date"].min()  # (on codes if encoded)
    listed.index = listed.index.astype(str)
    price = first_price.reindex(listed.index)
    listing = pd.Series(pd.NaT, index=listed.index, dtype="datetime64[ns]")
    if "listing_date" in metadata:
        last = metadata.drop_duplicates("ticker", keep="last")
        known = pd.Series(last["listing_date"].to_numpy(), index=last["ticker"].astype(str))
        listing = pd.to_datetime(known.reindex(listed.index), errors="coerce", format="mixed")
    late = (price > listed + LATE_PRICES) | (listing > listed)
    if not late.any():
        return {}
    rows = pd.DataFrame({"listed_from": listed, "first_price": price, "listing_date": listing})
    rows = rows[late.to_numpy()].sort_values("listed_from")
    return {
        "members_before_prices": {
            "count": len(rows),
            "examples": [
                {
                    "ticker": str(t),
                    **{k: None if pd.isna(v) else f"{v:%Y-%m-%d}" for k, v in r.items()},
                }  # fmt: skip
                for t, r in rows.head(20).iterrows()
            ],
        }
    }
