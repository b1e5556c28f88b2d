"""The content checks a log must pass, shared by 01 (before anything is written) and 02 (on
reading): columns, keys, numbers, dates and their order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import BadInputError
from .. import textio
from ..vocabulary import CORPORATE_ACTIONS, LOG_TYPES, LogType
from .names import LogName

# every row needs these (an empty one cannot be placed); announcement dates may be missing (D6:
# the period end plus a lag stands in)
OPTIONAL = ("announcement_date",)
KEY_TEXT = {
    "constituent_list": ("index",),
    "corporate_actions": ("action",),
    "market_regimes": ("regime",),
}


def check_frame(
    name: LogName, frame: pd.DataFrame, where: str, rows=None, *, group=None, timestamps=None
) -> None:
    """The content rules of a log, shared by 01 (before writing) and 02 (when reading):
    nothing dated after the query time, one row per key, known corporate actions, no empty
    ticker, and no report announced before its period ended. `rows` gives the row number to
    name for each frame row (default: the logfile's line numbers with the header on line 1).
    The rows of many logs of name's type are checked at once, each against its own log, with
    `group` (the log of each row) and `timestamps` (each log's query time, as in LogName). A row
    without a date or key (an import with an empty date cell) is refused here, so 01 never
    writes what 02 cannot build."""
    kind: LogType = LOG_TYPES[name.data_type]
    rows = np.arange(2, len(frame) + 2) if rows is None else np.asarray(rows)
    if group is not None:  # each log's own keys: the log becomes part of every key
        frame = frame.assign(_log=group)
    keyed = ["_log"] if group is not None else []

    def fail(col: str, mask: np.ndarray, what: str) -> BadInputError:
        i = int(np.flatnonzero(mask)[0])
        value = frame[col].iloc[i]
        shown = f"{value:%Y-%m-%d}" if isinstance(value, pd.Timestamp) else repr(value)
        return BadInputError(
            f"{where}, row {rows[i]}, field '{col}': {shown} {what}; fix the export or remove "
            "it from the datalog and query again"
        )

    for col in (*kind.dates, *KEY_TEXT.get(name.data_type, ())):
        if col in OPTIONAL or col not in frame:
            continue
        values = frame[col]
        empty = values.isna().to_numpy()
        if values.dtype == object:
            empty = empty | (values.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            raise BadInputError(
                f"{where}, row {rows[int(np.flatnonzero(empty)[0])]}, field '{col}' is empty "
                f"({int(empty.sum())} such row(s)); every row of a {name.data_type} log needs a "
                f"{col}: fix the export, or remove the file from the datalog and query again"
            )
    query_time = np.datetime64(name.timestamp, "us")
    if group is not None:
        query_time = np.asarray(timestamps, dtype=np.int64)[group].astype("datetime64[us]")
    for col in kind.dates:
        if col != "period_end" and col in frame:
            late = frame[col].to_numpy() > query_time
            if late.any():
                when = pd.Timestamp(query_time if group is None else query_time[late.argmax()])
                raise fail(
                    col,
                    late,
                    f"is after the query time {when:%Y-%m-%d %H:%M} UTC (a query cannot "
                    "return the future; for an import, set exported_at to when it was exported)",
                )
    if "ticker" in frame:
        empty = (
            frame["ticker"].isna().to_numpy()
            | (frame["ticker"].astype(str).str.strip() == "").to_numpy()
        )
        if empty.any():
            raise fail("ticker", empty, "is empty; every row needs a ticker")
    if (
        kind.unique
        and all(c in frame for c in kind.unique)
        and not keys_increase(frame, (*keyed, *kind.unique))
    ):
        dup = frame.duplicated([*keyed, *kind.unique], keep="first").to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            key = frame[list(kind.unique)].iloc[i]
            first = int(np.flatnonzero((frame[list(kind.unique)] == key).all(axis=1).to_numpy())[0])
            raise fail(
                kind.unique[0],
                dup,
                f"appears more than once (first at row {rows[first]}); a {name.data_type} log "
                f"holds one row per {' and '.join(kind.unique)}",
            )
    if name.data_type == "corporate_actions":
        bad = ~frame["action"].isin(CORPORATE_ACTIONS).to_numpy()
        if bad.any():
            raise fail("action", bad, f"is not one of {', '.join(CORPORATE_ACTIONS)}")
        for action in ("split", "delisting"):  # only dividends on one day add up
            rows_of = frame[frame["action"] == action]
            dup = (
                rows_of.duplicated([*keyed, "date"])
                .reindex(frame.index, fill_value=False)
                .to_numpy()
            )
            if dup.any():
                raise fail("date", dup, f"has a second {action} on the same day")
    if name.data_type == "ticker_fundamental_data":
        early = (frame["announcement_date"] < frame["period_end"]).to_numpy()
        if early.any():
            raise fail(
                "announcement_date",
                early,
                "is before the period end; figures cannot be public before their period ends "
                "(check that period end and announcement date are not swapped)",
            )


def keys_increase(frame: pd.DataFrame, keys) -> bool:
    """Whether the rows' keys strictly increase row by row (in the order of `keys`), so no key
    repeats: dates as vendors send them need no search for repeats, and rows sorted by their keys
    need no merge. False where a key is missing or its values do not compare."""
    if len(frame) < 2:
        return True
    columns = []
    for key in keys:
        values = comparable(frame[key])
        if values.dtype.kind not in "MiO" or pd.isna(values).any():
            return False
        columns.append(values)
    try:
        return in_key_order(columns)
    except TypeError:  # text and numbers in one column
        return False


def in_key_order(keys: list[np.ndarray], strict: bool = True) -> bool:
    """Whether rows are in ascending order of these arrays, the first the most significant:
    strictly (no two rows with equal keys) or allowing ties. A value that compares with
    nothing (NaN, NaT) is out of order."""
    if len(keys[0]) < 2:
        return True
    later = np.zeros(len(keys[0]) - 1, dtype=bool)  # row k+1 after row k on the keys so far
    tied = np.ones_like(later)  # row k+1 equal to row k on the keys so far
    for values in keys:
        later |= tied & (values[1:] > values[:-1])
        tied &= values[1:] == values[:-1]
    return bool(later.all() if strict else (later | tied).all())


def comparable(column: pd.Series) -> np.ndarray:
    """A column's values, or for text dictionary-encoded on sorted categories its codes, which
    order as the text does (a missing value becomes NaN)."""
    if (
        isinstance(column.dtype, pd.CategoricalDtype)
        and column.cat.categories.is_monotonic_increasing
    ):
        codes = column.cat.codes.to_numpy()
        return codes if (codes >= 0).all() else np.where(codes >= 0, codes, np.nan)
    return column.to_numpy()


def _parse_numbers(col: pd.Series, where: str, name: str, rows: np.ndarray) -> pd.Series:
    arr, bad = textio.parse_floats(col)
    if bad.any():
        raise _bad_row(where, name, col, bad, "a number", rows)
    if np.isinf(arr).any():
        raise _bad_row(where, name, col, np.isinf(arr), "a finite number", rows)
    return pd.Series(arr, index=col.index)


# the days a datetime64[ns] column holds (pandas 3 parses 0001-01-01 at a coarser unit)
FIRST_DAY, LAST_DAY = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")


def _parse_dates(col: pd.Series, where: str, name: str, rows: np.ndarray) -> pd.Series:
    values = pd.to_datetime(col.str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = values.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        raise _bad_row(where, name, col, bad, "a date written YYYY-MM-DD", rows)
    outside = ((values < FIRST_DAY) | (values > LAST_DAY)).to_numpy()
    if outside.any():
        raise _bad_row(
            where, name, col, outside,
            f"a date from {FIRST_DAY:%Y-%m-%d} to {LAST_DAY:%Y-%m-%d}", rows,
        )  # fmt: skip
    return values.astype("datetime64[ns]")


def _bad_row(
    where: str, col: str, raw: pd.Series, mask: np.ndarray, what: str, rows: np.ndarray
) -> BadInputError:
    i = int(np.flatnonzero(mask)[0])
    return BadInputError(
        f"{where}, row {rows[i]}, field '{col}': {raw.iloc[i]!r} is not {what}; "
        "fix the export or remove the file from the datalog and query again"
    )
