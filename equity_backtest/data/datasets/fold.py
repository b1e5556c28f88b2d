"""The incremental fold: a previous version's tables read a column at a time from their
files, and the rows of new logs placed among them (dictionary codes recoded, untouched rows
copied run by run), giving the bytes a build from scratch gives."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from ...errors import BadInputError
from ...infra import heap
from ..vocabulary import TABLES
from .resolve import _recoded, _resolve
from .versions import _empty


class _Stored:
    """A table of the version an incremental build starts from, left in its feather file and
    read a column at a time (only that column's blocks are decompressed): a fold places the
    previous rows straight into the new table, and a table the new logs leave alone is converted
    only if something needs its frame."""

    def __init__(self, folder: Path, name: str, part: str = ""):
        """The table `name` of a version folder, or its year `part` (dataset format 2)."""
        self.name = name
        self.path = Path(folder) / (f"{name}/{part}.feather" if part else f"{name}.feather")
        self.exists = self.path.is_file()
        self.columns = list(self.schema.names) if self.exists else list(_empty(name).columns)
        self._chunk_rows: list[int] | None = None if self.exists else []
        self._frame: pd.DataFrame | None = None

    @property
    def schema(self) -> pa.Schema:
        with self._readable(), pa.memory_map(str(self.path)) as source:
            return pa.ipc.open_file(source).schema

    @contextlib.contextmanager
    def _readable(self):
        """A file of the previous version that Arrow cannot read is named, with the way out."""
        try:
            yield
        except (pa.ArrowException, OSError) as exc:
            raise BadInputError(
                f"{self.path}: the dataset version this build starts from is damaged ({exc}); "
                "rebuild from the datalog with 02_build_datasets.py --full"
            ) from exc

    @property
    def chunk_rows(self) -> list[int]:
        """Rows of each record batch (every column is chunked so), from the first column."""
        if self._chunk_rows is None:
            self._chunk_rows = [len(c) for c in self.column(self.columns[0]).chunks]
        return self._chunk_rows

    def __len__(self) -> int:
        return sum(self.chunk_rows)

    def column(self, name: str) -> pa.ChunkedArray:
        """One column, one chunk per record batch of the file."""
        with self._readable():
            return feather.read_table(self.path, columns=[name], memory_map=True).column(0)

    def frame(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The table (or these columns) as the builder's frame: what read_feather gives, Arrow's
        buffers released as they are converted. The whole table is read once and kept."""
        if columns is None and self._frame is not None:
            return self._frame
        if not self.exists:
            frame = _empty(self.name) if columns is None else _empty(self.name)[columns]
        else:
            with self._readable():
                table = feather.read_table(self.path, columns=columns, memory_map=True)
            frame = table.to_pandas(split_blocks=True, self_destruct=True)
            heap.release_freed_memory()
        if columns is None:
            self._frame = frame
        return frame

    def take(self, rows: np.ndarray) -> pd.DataFrame:
        """These rows of the table, with the dtypes frame() gives, one column read at a time."""
        index = pa.array(rows)
        columns = {}
        for name in self.columns:
            column = self.column(name)
            columns[name] = _as_frame_column(column, column.take(index))
        return pd.DataFrame(columns)


def _fold_in(table: str, previous: _Stored, new: pd.DataFrame) -> pd.DataFrame | None:
    """_resolve of the previous version's table and new rows, without resolving the previous
    rows again: the new rows are resolved with the previous rows of their keys only, and the
    result is merged into the untouched rest, which is already in order. An incremental build
    of a large market table then costs what its new rows cost, plus one pass over the table:
    each column is read from the previous file and its rows copied straight to their places.
    None where this shortcut does not apply (the caller resolves everything): tables whose
    order is not their key, whole-group or change-only rules, new columns, missing keys, or
    values of another type."""
    spec = TABLES[table]
    keys = list(spec.keys)
    if spec.replace_group or table == "fundamentals" or list(spec.sort) != keys:
        return None
    if set(new.columns) - set(previous.columns) or any(new[k].isna().any() for k in keys):
        return None
    ranks = _key_ranks(keys, previous.frame(keys), new)
    if ranks is None:
        return None
    old_key, new_key, rank_of = ranks
    if len(old_key) > 1 and not (np.diff(old_key) > 0).all():  # not sorted, or not one per key
        return None
    pos = np.searchsorted(old_key, new_key)
    hit = pos < len(old_key)
    hit[hit] = old_key[pos[hit]] == new_key[hit]
    touched = np.unique(pos[hit])  # previous rows whose keys the new rows name
    if len(touched):
        before = previous.take(touched)
        plain = {c: "object" for c in before.columns if isinstance(before[c].dtype, pd.CategoricalDtype)}  # fmt: skip
        part = pd.concat([before.astype(plain), new], ignore_index=True)
    else:
        part = new
    part = _resolve(table, part)[previous.columns]
    kept = None
    if len(touched):
        kept = np.ones(len(old_key), dtype=bool)
        kept[touched] = False
    rest_key, part_key = old_key if kept is None else old_key[kept], rank_of(part)
    del old_key
    if len(part_key) > 1 and not (np.diff(part_key) > 0).all():
        return None
    # where the part's rows go among the rest's (keys are distinct between the two)
    at = np.searchsorted(rest_key, part_key) + np.arange(len(part_key))
    del rest_key
    pieces = _pieces(previous.chunk_rows, touched, at)
    columns = {}
    for col in previous.columns:  # merged columns keep the table's dtypes (else resolve all)
        stored, fresh = previous.column(col), part[col]
        if _as_numpy(stored) and pieces is not None:
            dtype = np.dtype(stored.type.to_pandas_dtype())
            if not _holds(dtype, fresh.dtype):
                return None
            chunks = [c.to_numpy(zero_copy_only=False) for c in stored.chunks]
            merged = _placed(chunks, pieces, fresh.to_numpy().astype(dtype, copy=False), at)
            columns[col] = pd.Series(merged, dtype=merged.dtype, copy=False)
        else:
            columns[col] = _merged_column(_as_frame_column(stored), kept, fresh, at)
            if columns[col] is None:
                return None
        stored = chunks = merged = None  # (the previous column's memory goes back now)
        heap.release_freed_memory()
    return pd.DataFrame(columns, copy=False)  # fresh arrays: no copy into one block


def _as_numpy(column: pa.ChunkedArray) -> bool:
    """Whether the column's chunks convert to numpy as a frame holds it (the same dtype and
    values as to_pandas gives): numbers without missing integers, naive nanosecond times."""
    t = column.type
    if pa.types.is_floating(t):
        return True
    if pa.types.is_integer(t) or (pa.types.is_timestamp(t) and t.tz is None and t.unit == "ns"):
        return column.null_count == 0
    return False


def _as_frame_column(column: pa.ChunkedArray, values: pa.ChunkedArray | None = None) -> pd.Series:
    """The column (or these of its values) as the whole table's to_pandas gives it: integers
    are floats there where the column misses a value, booleans objects."""
    series = (column if values is None else values).to_pandas()
    if column.null_count and pa.types.is_integer(column.type):
        series = series.astype("float64")
    elif column.null_count and pa.types.is_boolean(column.type):
        series = series.astype(object)
    return series


def _holds(old, fresh) -> bool:
    """Whether a column of dtype `old` takes values of dtype `fresh` without changing type."""
    return (
        isinstance(old, np.dtype)
        and isinstance(fresh, np.dtype)
        and np.result_type(old, fresh) == old
    )


def _merged_column(old: pd.Series, kept: np.ndarray | None, fresh: pd.Series, at: np.ndarray):
    """A previous column without its touched rows (kept=False), with the fresh values at the
    result's positions `at`; None where the values are of another type."""
    if isinstance(old.dtype, pd.CategoricalDtype):  # codes into the new categories
        codes = old.cat.codes.to_numpy()
        codes = codes if kept is None else codes[kept]
        codes, categories = _recoded(codes, old.cat.categories, fresh.dropna().unique())
        codes = codes.astype(np.int32 if len(categories) > 32000 else np.int16, copy=False)
        new_codes = categories.get_indexer(fresh.astype(object)).astype(codes.dtype)
        merged = _interleave(codes, new_codes, at)
        return pd.Categorical.from_codes(merged, categories=categories.tolist())
    if not _holds(old.dtype, fresh.dtype):
        return None
    values = old.to_numpy() if kept is None else old.to_numpy()[kept]
    merged = _interleave(values, fresh.to_numpy().astype(old.dtype, copy=False), at)
    return pd.Series(merged, dtype=merged.dtype, copy=False)  # object stays so


def _interleave(rest: np.ndarray, fresh: np.ndarray, at: np.ndarray) -> np.ndarray:
    """rest's values in order, with fresh's at the result's (rising) positions `at`: a slice
    copy between consecutive new rows where they are few (a day's rows into decades), masks
    where they are many."""
    out = np.empty(len(rest) + len(fresh), dtype=rest.dtype)
    if len(fresh) > 100_000:
        into = np.zeros(len(out), dtype=bool)
        into[at] = True
        out[~into], out[into] = rest, fresh
        return out
    out[at] = fresh
    done = 0  # rest values placed so far
    for k, a in enumerate(at.tolist()):
        out[done + k : a] = rest[done : a - k]
        done = a - k
    out[done + len(at) :] = rest[done:]
    return out


_MOST_PIECES = 50_000  # beyond this, a column is joined once and merged by masks instead


def _pieces(chunk_rows: list[int], touched: np.ndarray, at: np.ndarray) -> np.ndarray | None:
    """How the previous rows that stay (all but `touched`, rising) reach the merged table when
    new rows go to its positions `at`: runs (chunk, first row in it, end row, first place) that
    lie in one chunk of the file and between two new rows. None where they would be too many."""
    starts = np.concatenate([[0], np.cumsum(chunk_rows, dtype=np.int64)])
    n = int(starts[-1])
    before = at - np.arange(len(at))  # previous rows that stay ahead of each new row
    # the previous row where each new row cuts in: the before-th row that stays
    cut = before + np.searchsorted(touched - np.arange(len(touched)), before, side="right")
    bounds = np.unique(np.concatenate([starts, touched, touched + 1, cut[cut < n]]))
    lo, hi = bounds[:-1], bounds[1:]
    lo, hi = lo[~np.isin(lo, touched)], hi[~np.isin(lo, touched)]
    if len(lo) > _MOST_PIECES:
        return None
    rest = lo - np.searchsorted(touched, lo)  # its place among the rows that stay
    chunk = np.searchsorted(starts, lo, side="right") - 1
    place = rest + np.searchsorted(before, rest, side="right")
    return np.stack([chunk, lo - starts[chunk], hi - starts[chunk], place], axis=1)


def _placed(chunks: list[np.ndarray], pieces: np.ndarray, fresh: np.ndarray, at: np.ndarray):
    """The merged column: fresh values at `at`, the previous rows that stay copied run by run
    from the file's chunks (no joined copy of the previous column is made)."""
    out = np.empty(len(fresh) + int((pieces[:, 2] - pieces[:, 1]).sum()), dtype=fresh.dtype)
    out[at] = fresh
    for chunk, lo, hi, place in pieces.tolist():
        out[place : place + hi - lo] = chunks[chunk][lo:hi]
    return out


def _key_ranks(keys: list[str], previous: pd.DataFrame, new: pd.DataFrame):
    """One int64 per row for the key columns, in the order a sort by them gives (each column
    ranked in the sorted union of its values), for the previous rows and the new; and the
    function that ranks other rows so. None where the ranks would not fit in 63 bits."""
    vocab = {}
    for k in keys:
        a, b = previous[k], new[k]
        if isinstance(a.dtype, pd.CategoricalDtype):
            a = a.cat.categories
        values = np.concatenate([np.asarray(a, dtype=object if b.dtype == object else None),
                                 b.unique() if b.dtype == object else b.to_numpy()])  # fmt: skip
        try:
            vocab[k] = np.unique(pd.unique(values))  # (tens of millions of days: hashed first)
        except TypeError:  # values that do not compare (mixed types)
            return None
    if np.prod([float(len(v) + 1) for v in vocab.values()]) >= 2.0**62:
        return None

    def rank_of(frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(frame), dtype=np.int64)
        for k in keys:
            col = frame[k]
            if isinstance(col.dtype, pd.CategoricalDtype):
                codes = col.cat.codes.to_numpy()
                rank = np.searchsorted(vocab[k], np.asarray(col.cat.categories, dtype=object))
                r = rank[codes]
            else:
                r = np.searchsorted(vocab[k], col.to_numpy())
            out = out * (len(vocab[k]) + 1) + r
        return out

    return rank_of(previous), rank_of(new), rank_of
