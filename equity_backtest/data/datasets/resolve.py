"""Latest query wins: rows of one table from many logs put in key order, the newest log's
value kept per key (per column where a response was partial), fundamentals compacted to their
changes, dictionary-encoded columns on sorted categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from ...infra import heap
from ..datalog import comparable, keys_increase
from ..vocabulary import CATEGORICAL, TABLES


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """pd.concat(frames, ignore_index=True), emptying `frames`: where every part has the same
    columns and dtypes, one column at a time, each part's column freed once joined (the peak is
    the table and one column, not the parts and the table), dictionary-encoded columns joined
    on the sorted union of their categories."""
    if not alike(frames):
        whole = pd.concat(frames, ignore_index=True)
        frames.clear()
        return whole
    columns = {}
    for col in list(frames[0].columns):
        pieces = [f.pop(col) for f in frames]
        if isinstance(pieces[0].dtype, pd.CategoricalDtype):
            columns[col] = union_categoricals([p.array for p in pieces], sort_categories=True)
        elif isinstance(pieces[0].dtype, np.dtype):
            columns[col] = pd.Series(np.concatenate([p.to_numpy() for p in pieces]), copy=False)
        else:
            columns[col] = pd.concat(pieces, ignore_index=True)
        del pieces
        heap.release_freed_memory()
    frames.clear()
    return pd.DataFrame(columns, copy=False)


def alike(frames: list[pd.DataFrame]) -> bool:
    """Whether every frame has the first one's columns, in its order, of the same kinds (a
    dictionary-encoded column alike whatever its categories)."""
    return all(
        list(f.columns) == list(frames[0].columns)
        and all(_kind(f[c]) == _kind(frames[0][c]) for c in f.columns)
        for f in frames
    )


def _kind(column: pd.Series) -> str:
    return "category" if isinstance(column.dtype, pd.CategoricalDtype) else str(column.dtype)


def _in_order(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """frame.sort_values(by, kind="stable"), without a copy where the rows are in order already,
    and otherwise ordered one column at a time (each old column freed once moved) where the
    order comes from integer codes: dictionary-encoded text with sorted categories, dates and
    integers without missing values. Takes the frame over (its columns are moved out of it)."""
    if keys_increase(frame, by):
        return frame
    codes = []
    for col in reversed(by):  # np.lexsort sorts by its last key first
        dtype = frame[col].dtype
        if isinstance(dtype, pd.CategoricalDtype) and not dtype.categories.is_monotonic_increasing:
            return frame.astype({col: object}).sort_values(by, kind="stable")  # by the text
        values = comparable(frame[col])
        if values.dtype.kind not in "iuM" or pd.isna(values).any():
            return frame.sort_values(by, kind="stable")
        codes.append(values.view(np.int64) if values.dtype.kind == "M" else values)
    order = np.lexsort(codes)  # a stable sort, as sort_values(kind="stable")
    del codes
    taken = {col: frame.pop(col).array.take(order) for col in list(frame.columns)}
    return pd.DataFrame(taken, copy=False)


def _resolve(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Latest query wins per key; deterministic row order and dtypes."""
    keys, sort = list(TABLES[table].keys), list(TABLES[table].sort)
    # a key's rows next to each other, oldest log first: in the table's own order where that
    # orders the key's columns alone (fundamentals), so the rows need no second sort
    by = sort if sorted(sort) == sorted(keys) else keys
    frame = _in_order(frame, [*by, "log_ts"])
    if TABLES[table].replace_group:
        latest = frame.groupby(keys, dropna=False, observed=True)["log_ts"].transform("max")
        frame = frame[frame["log_ts"] == latest]
    elif keys_increase(frame, by):  # sorted, one row per key (a first build): nothing to merge
        order = [*keys, *(c for c in frame.columns if c not in keys)]
        frame = frame if list(frame.columns) == order else frame[order]
    else:
        # last non-missing value per column, so a newer partial response does not erase older fields
        frame = frame.groupby(keys, dropna=False, sort=False, observed=True).last().reset_index()
    if table == "fundamentals":
        frame = _changes_only(frame)
    if sort != by:  # (rows are in that order already)
        frame = _in_order(frame, sort)
    frame.index = pd.RangeIndex(len(frame))  # (reset_index would copy every column)
    for col in frame.columns:
        if col in CATEGORICAL:
            # dictionary-encoded: small files, and readers map a few categories, not every row
            frame[col] = _sorted_categories(frame[col])
        elif frame[col].dtype == object or str(frame[col].dtype) in ("str", "string"):
            frame[col] = frame[col].astype(object)
    return frame


def _sorted_categories(column: pd.Series) -> pd.Categorical:
    """The column dictionary-encoded on the sorted distinct values it holds (an encoded column
    recoded: its rows are not turned back into text)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Categorical(column.astype(object), categories=sorted(column.dropna().unique()))
    codes, categories = _recoded(column.cat.codes.to_numpy(), column.cat.categories)
    return pd.Categorical.from_codes(codes, categories=categories.tolist())


def _recoded(codes: np.ndarray, old: pd.Index, extra=()) -> tuple[np.ndarray, pd.Index]:
    """Codes into `old` as codes into the sorted distinct values they use, with `extra` values
    added to those categories (-1, missing, stays -1); the codes as they are when nothing moves."""
    used = old[np.bincount(codes[codes >= 0], minlength=len(old)) > 0]
    values = np.concatenate([used.to_numpy(dtype=object), np.asarray(extra, dtype=object)])
    categories = pd.Index(sorted(set(values.tolist())), dtype=object)
    recode = categories.get_indexer(old)
    if np.array_equal(recode, np.arange(len(recode))):
        return codes, categories
    return np.append(recode, -1)[codes], categories


_VERSION_GROUP = ["source", "ticker", "metric", "period_end"]


def _changes_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Change-only compaction per metric: a later version of a period's figure (a re-query or a
    restatement with a later announcement date) is kept only if its value differs from the version
    before it. What was public on any date is unchanged; repeated re-queries add no rows."""
    frame = _in_order(frame, [*_VERSION_GROUP, "announcement_date"])
    if len(frame) < 2:
        return frame
    # sorted by its group first, a row's version before it is the row above, where that row is
    # of the same group (missing keys grouping together, as groupby's dropna=False does)
    same = np.ones(len(frame) - 1, dtype=bool)
    for col in _VERSION_GROUP:
        codes = _group_codes(frame[col])
        same &= codes[1:] == codes[:-1]
    value = frame["value"].to_numpy(dtype=float)
    return frame[~np.r_[False, same & (value[1:] == value[:-1])]]


def _group_codes(column: pd.Series) -> np.ndarray:
    """Integers equal where the column's values are (a missing value equal to another)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    if column.dtype.kind == "M":
        return column.to_numpy().view(np.int64)
    return pd.factorize(column, use_na_sentinel=False)[0]


def _reorders_history(parts: list[pd.DataFrame]) -> bool:
    """Whether new fundamentals rows (all parts after the first, the previous version) fall before
    a version already in the previous table (an earlier announcement date or an older log): then
    a dropped repeat might matter again, so only a full rebuild equals the bootstrap."""
    if len(parts) < 2 or not len(parts[0]):
        return False
    new = pd.concat([p for p in parts[1:] if len(p)] or [parts[0].iloc[:0]], ignore_index=True)
    if new.empty:
        return False
    old = parts[0].astype({c: object for c in ("source", "ticker", "metric")})
    latest = old.groupby(_VERSION_GROUP, dropna=False)[["announcement_date", "log_ts"]].max()
    new = new.astype({c: object for c in ("source", "ticker", "metric")})
    joined = new.merge(latest.reset_index(), on=_VERSION_GROUP, suffixes=("", "_old"))
    return bool(
        (joined["announcement_date"] < joined["announcement_date_old"]).any()
        or (joined["log_ts"] < joined["log_ts_old"]).any()
    )
