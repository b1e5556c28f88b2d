"""Exchange calendars: which days an exchange trades, through the exchange_calendars package.

One place for the simulated market's sessions and the quality report's check of a source's
dates. Calendars are built for exactly the dates asked, so nothing depends on today's date.
"""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd

from ..errors import BadInputError

# exchange names vendors write, and the exchange_calendars code for each
ALIASES = {
    "NYSE": "XNYS",
    "N": "XNYS",
    "NASDAQ": "XNAS",
    "Q": "XNAS",
    "AMEX": "XASE",
    "NYSE AMERICAN": "XASE",
    "NYSE MKT": "XASE",
    "A": "XASE",
    "ARCA": "ARCX",
    "NYSE ARCA": "ARCX",
    "P": "ARCX",
    "LSE": "XLON",
    "TSE": "XTKS",
    # CRSP: CIZ's primaryexch letters (N, A and Q above; R NYSE Arca, B Bats) and the legacy
    # numeric exchcd (1 NYSE, 2 NYSE American, 3 Nasdaq, 4 Arca, 5 Bats; 31-35 the same exchanges'
    # when-issued trading), per CRSP's data descriptions; every US listing keeps NYSE's sessions
    "R": "ARCX",
    "B": "BATS",
    "1": "XNYS",
    "2": "XASE",
    "3": "XNAS",
    "4": "ARCX",
    "5": "BATS",
    "31": "XNYS",
    "32": "XASE",
    "33": "XNAS",
    "34": "ARCX",
    "35": "BATS",
}


def code(name: str) -> str | None:
    """The exchange_calendars code for an exchange's name or code; None if it has none."""
    import exchange_calendars

    key = str(name).strip().upper()
    key = key[:-2] if key.endswith(".0") and key[:-2].isdigit() else key  # 1.0: a DOUBLE code
    key = ALIASES.get(key, key)
    return key if key in exchange_calendars.get_calendar_names(include_aliases=True) else None


def checked(name: str) -> str:
    """The exchange_calendars code of the exchange_calendar setting, or a message naming it."""
    exchange = code(name)
    if exchange is None:
        raise BadInputError(
            f"parameter 'exchange_calendar' = {name!r} is not an exchange calendar: use an "
            "exchange_calendars code such as XNYS (New York), XNAS, XLON, XTKS or XHKG"
        )
    return exchange


@functools.lru_cache(maxsize=16)
def _calendar(name: str, start: dt.date, end: dt.date):
    import exchange_calendars

    exchange = checked(name)
    try:
        return exchange_calendars.get_calendar(exchange, start=start, end=end)
    except (ValueError, exchange_calendars.errors.CalendarError) as err:
        raise BadInputError(f"exchange calendar {exchange} from {start} to {end}: {err}") from err


def _years(name: str, start, end):
    """The calendar of the whole years around [start, end]: building one is slow (half a
    second), and a window that grows by a day (a live account's) keeps hitting the cache."""
    start, end = _day(start), _day(end)
    return _calendar(name, dt.date(start.year, 1, 1), dt.date(end.year, 12, 31)), start, end


def sessions(name: str, start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """The days the exchange trades from start to end (plain dates, no time zone)."""
    calendar, start, end = _years(name, start, end)
    days = pd.DatetimeIndex(calendar.sessions)
    return days[(days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))]


def early_closes(name: str, start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """The exchange's half days from start to end."""
    calendar, start, end = _years(name, start, end)
    days = pd.DatetimeIndex(calendar.early_closes)
    return days[(days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))]


def _day(value) -> dt.date:
    return pd.Timestamp(value).date()


def schedule(name: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Each session's opening and closing moments (UTC) from start to end, by session date:
    when a live account's heartbeats come."""
    calendar, start, end = _years(name, start, end)
    table = calendar.schedule[["open", "close"]].copy()
    table.index = pd.DatetimeIndex(table.index)
    return table[(table.index >= pd.Timestamp(start)) & (table.index <= pd.Timestamp(end))]


def closes(name: str, start: dt.date, end: dt.date) -> pd.Series:
    """Each session's closing moment (UTC) from start to end, by session date."""
    return schedule(name, start, end)["close"]
