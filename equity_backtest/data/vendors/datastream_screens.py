"""Datastream's known traps, screened per instrument before anything is logged (D14).

Datastream answers a daily request with a value for every weekday of the window: holidays carry
the previous day's price, and a company that died keeps its last price until today (Ince and
Porter, 2006, "Individual equity return data from Thomson Datastream: handle with care!",
Journal of Financial Research 29(4)). Its adjusted price P folds in capital changes, its UP is
the price as it was, and its return index RI reinvests gross dividends at the ex-date's close.
From one instrument's answer (a frame indexed by date, one column per `datastream_fields.
MARKET_DATATYPES` key), `screen` gives:

  - the market log: raw open/high/low (the adjusted PO/PH/PL times UP/P of the day), close = UP,
    volume = VO x 1000, market cap = MV x 1e6, only on the exchange's sessions and only up to the
    last real trade;
  - corporate actions: a split where UP/P changes (the ratio of the day before to the day,
    snapped to a simple fraction within the tolerance), a dividend where XDDE is the row's own
    date (UDDE, unadjusted), a delisting the session after the last real trade (value: that
    trade's price: Datastream has no delisting return, so a loss after it is not in the data);
  - screen records (vocabulary.SCREEN_RECORDS), logged with the actions and counted in the
    quality report, so nothing is changed silently:
      holiday_padding  weekdays the exchange was shut, removed (value: how many)
      padded           the padding after a death, removed (value: how many days; date: the first)
      reversal         Ince and Porter's screen: a return of 100% or more reversed the next day,
                       (1 + r_t)(1 + r_t+1) - 1 < 20%; reported, prices kept (value: r_t)
      low_price        days below `low_price`, whose returns come from rounded prices; reported
                       (value: how many days; date: the first)
      ri_mismatch      the total return of the logged prices, splits and dividends differs from
                       RI's over the series by more than `ri_tolerance` (value: ours / RI's - 1)
      market_cap_from_shares  days without MV whose market cap is UP x NOSH x 1000 (value: how
                       many; date: the first)

`month_end_bars` turns the screened days into month-end bars (ds_frequency = "monthly").
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction

import numpy as np
import pandas as pd

# a dead company's NAME, e.g. "ACME DEAD - DELIST.03/12/01" (day/month/two-digit year)
DEAD = re.compile(r"DEAD\s*-\s*DELIST\.?\s*(\d{1,2})/(\d{1,2})/(\d{2,4})", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Rules:
    """The screens' thresholds (parameters.py's ds_* settings)."""

    min_padding_days: int = 20
    split_tolerance: float = 0.01
    low_price: float = 1.0
    ri_tolerance: float = 0.005


@dataclasses.dataclass
class Screened:
    market: pd.DataFrame  # date + vocabulary.MARKET_FIELDS
    actions: pd.DataFrame  # date, action, value (applied actions and screen records)


def delisted_on(name: object) -> pd.Timestamp | None:
    """The delisting date a dead company's NAME carries, or None."""
    match = DEAD.search(str(name)) if isinstance(name, str) else None
    if not match:
        return None
    day, month, year = match.groups()
    year_fmt = "%Y" if len(year) == 4 else "%y"
    return pd.to_datetime(f"{day}/{month}/{year}", format=f"%d/%m/{year_fmt}", errors="coerce")


def snap_ratio(ratio: float, tolerance: float) -> float:
    """A split ratio from two rounded prices: the nearest fraction with a denominator up to 20
    when within the tolerance (2:1 is 2.0, 3:2 is 1.5), else the ratio as measured."""
    simple = Fraction(ratio).limit_denominator(20)
    return float(simple) if abs(float(simple) / ratio - 1) <= tolerance else float(ratio)


def screen(
    answer: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    rules: Rules,
    dead: pd.Timestamp | None = None,
) -> Screened:
    """One instrument's daily answer -> its market log and its actions (see the module)."""
    frame = answer.sort_index()
    frame = frame[frame[["unadjusted_close", "close"]].notna().any(axis=1)]
    records: list[tuple[pd.Timestamp, str, float]] = []

    shut = ~frame.index.isin(sessions)
    if shut.any():
        records.append((frame.index[shut][0], "holiday_padding", float(shut.sum())))
        frame = frame[~shut]
    frame, delisting = _end_at_last_trade(frame, sessions, rules, dead, records)
    if frame.empty:
        return Screened(_market(frame), _frame(records))

    up = frame["unadjusted_close"].astype(float)
    adjusted = frame["close"].astype(float)
    factor = (up / adjusted).ffill()
    actions = _splits(factor, rules.split_tolerance) + _dividends(frame)
    if delisting is not None:
        actions.append(delisting)
    records += _reversals(adjusted)
    low = up < rules.low_price
    if low.any():
        records.append((up.index[low][0], "low_price", float(low.sum())))
    mismatch = _ri_mismatch(frame, actions, rules.ri_tolerance)
    if mismatch is not None:
        records.append(mismatch)
    market = _market(frame, factor)
    if "shares" in frame:  # no MV: the shares in issue times the price
        derived = market["market_cap"].isna().to_numpy() & frame["shares"].notna().to_numpy()
        if derived.any():
            shares = frame["shares"].to_numpy(dtype=float) * 1000.0
            market.loc[derived, "market_cap"] = (market["close"].to_numpy() * shares)[derived]
            records.append((market["date"][derived].iloc[0], "market_cap_from_shares",
                            float(derived.sum())))  # fmt: skip
    return Screened(market, _frame(actions + records))


def month_end_bars(market: pd.DataFrame) -> pd.DataFrame:
    """Daily rows -> one bar a month, dated on the month's last day with data: its first open,
    highest high, lowest low, last close and market cap, and the month's volume."""
    if market.empty:
        return market
    month = market["date"].dt.to_period("M")
    grouped = market.groupby(month, sort=True)
    bars = pd.DataFrame(
        {
            "date": grouped["date"].max(),
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(min_count=1),
            "market_cap": grouped["market_cap"].last(),
        }
    )
    return bars.reset_index(drop=True)


def _end_at_last_trade(frame, sessions, rules, dead, records):
    """Cut the padding after a death: from the NAME's delisting date when it has one, else the
    trailing run of one unchanged price with no volume, when it is at least min_padding_days
    long. Returns the kept rows and the delisting (the next session, at the last price)."""
    if frame.empty:
        return frame, None
    if dead is not None:
        keep = frame.index <= dead
    else:
        close = frame["unadjusted_close"].to_numpy(dtype=float)
        volume = frame["volume"].to_numpy(dtype=float)
        quiet = (close == close[-1]) & ~(volume > 0)
        run = len(quiet) - (np.flatnonzero(~quiet)[-1] + 1 if (~quiet).any() else 0)
        if run < rules.min_padding_days or run == len(frame):
            return frame, None
        keep = np.arange(len(frame)) < len(frame) - run
    cut = frame[~keep]
    frame = frame[keep]
    if len(cut):
        records.append((cut.index[0], "padded", float(len(cut))))
    if frame.empty:
        return frame, None
    last = frame.index[-1]
    after = sessions[sessions > last]
    if not len(after) or (dead is None and not len(cut)):
        return frame, None
    return frame, (after[0], "delisting", float(frame["unadjusted_close"].iloc[-1]))


def _splits(factor: pd.Series, tolerance: float) -> list:
    ratio = factor.shift(1) / factor
    hits = ratio[(ratio - 1).abs() > tolerance]
    return [(day, "split", snap_ratio(float(r), tolerance)) for day, r in hits.items()]


def _dividends(frame: pd.DataFrame) -> list:
    if "dividend" not in frame or "ex_date" not in frame:
        return []
    ex = pd.to_datetime(frame["ex_date"], errors="coerce")
    amount = pd.to_numeric(frame["dividend"], errors="coerce")
    paid = (ex.to_numpy() == frame.index.to_numpy()) & (amount > 0).to_numpy()
    return [(day, "dividend", float(a)) for day, a in amount[paid].items()]


def _reversals(adjusted: pd.Series) -> list:
    r = adjusted.pct_change()
    nxt = r.shift(-1)
    hit = ((r >= 1.0) | (nxt >= 1.0)) & ((1 + r) * (1 + nxt) - 1 < 0.2)
    return [(day, "reversal", float(v)) for day, v in r[hit.fillna(False)].items()]


def _ri_mismatch(frame: pd.DataFrame, actions: list, tolerance: float):
    """Our total return over the kept series (cash dividends reinvested at the ex-date's close,
    as RI does) against RI's own; None when they agree or RI is missing."""
    if "return_index" not in frame:
        return None
    ri = frame["return_index"].astype(float)
    if len(frame) < 2 or not np.isfinite(ri.iloc[[0, -1]]).all() or ri.iloc[0] <= 0:
        return None
    close = frame["unadjusted_close"].astype(float)
    split = pd.Series(1.0, index=frame.index)
    cash = pd.Series(0.0, index=frame.index)
    for day, action, value in actions:
        if day in split.index and action == "split":
            split[day] *= value
        elif day in cash.index and action == "dividend":
            cash[day] += value
    # a split day: one old share is `ratio` new ones; a dividend is paid per share held that day
    growth = ((close * split + cash * split) / close.shift(1)).iloc[1:].prod()
    ours = float(growth) / float(ri.iloc[-1] / ri.iloc[0]) - 1
    return (frame.index[-1], "ri_mismatch", ours) if abs(ours) > tolerance else None


def _market(frame: pd.DataFrame, factor: pd.Series | None = None) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in ("open", "high", "low"):
        values = frame[column].astype(float) if column in frame else np.nan
        out[column] = values * factor if factor is not None else values
    out["close"] = frame["unadjusted_close"].astype(float)
    out["volume"] = frame["volume"].astype(float) * 1000.0 if "volume" in frame else np.nan
    mv = frame["market_value"].astype(float) * 1e6 if "market_value" in frame else np.nan
    out["market_cap"] = mv
    return out.rename_axis("date").reset_index()


def _frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "action", "value"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.sort_values(["date", "action"], kind="stable").reset_index(drop=True)
