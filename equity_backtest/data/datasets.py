"""Build versioned feather datasets from the datalog (D5), and read them back.

    datasets/CURRENT              name of the version in use (replaced atomically)
    datasets/v000003/             one complete build: <table>.feather + manifest.json

A build reads only the logs that the current version's manifest does not list, merges them into
the previous version's tables and resolves conflicts so that the latest query wins (by log
timestamp). The new version is written to a hidden temporary folder, renamed into place, and only
then does CURRENT switch to it; a crash at any moment leaves the previous version in use.
Rebuilding from an empty datasets/ gives tables identical (same SHA-256) to incremental builds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
from pandas.api.types import union_categoricals
from tqdm import tqdm

from .. import __version__
from ..errors import BadInputError
from ..infra import faults, heap
from ..infra.locks import process_alive
from ..infra.storage import atomic_write_text, fsync_dir, sha256_file
from . import calendars, quality
from .datalog import LogName, comparable, keys_increase, list_logs, parse_log, parse_many, read_log
from .vocabulary import CATEGORICAL, LOG_TYPES, TABLES

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BuildResult:
    version: str | None
    new_logs: int
    skipped_logs: list[str]
    rows: dict[str, int]
    up_to_date: bool = False
    quality: dict | None = None


def current_version(datasets_dir: str | Path) -> str | None:
    """The version name CURRENT points to, or None before the first build."""
    pointer = Path(datasets_dir) / "CURRENT"
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not (Path(datasets_dir) / name / "manifest.json").is_file():
        raise BadInputError(f"{pointer} names version '{name}', which is missing; rebuild with 02")
    return name


def read_manifest(datasets_dir: str | Path, version: str) -> dict:
    return json.loads((Path(datasets_dir) / version / "manifest.json").read_text())


def load_tables(
    datasets_dir: str | Path, version: str | None = None
) -> tuple[str, dict[str, pd.DataFrame]]:
    """Read every table of a dataset version (CURRENT by default)."""
    version = version or current_version(datasets_dir)
    if version is None:
        raise BadInputError(f"no dataset in {datasets_dir}; run 02_build_datasets.py first")
    folder = Path(datasets_dir) / version
    if not (folder / "manifest.json").is_file():
        raise BadInputError(f"dataset version {version} not found in {datasets_dir}")
    return version, {name: load_table(folder, name) for name in TABLES}


def load_table(folder: Path, name: str) -> pd.DataFrame:
    """One table of a version folder; a table added after the version was built reads empty."""
    path = Path(folder) / f"{name}.feather"
    return feather.read_feather(path) if path.is_file() else _empty(name)


class _Stored:
    """A table of the version an incremental build starts from, left in its feather file and
    read a column at a time (only that column's blocks are decompressed): a fold places the
    previous rows straight into the new table, and a table the new logs leave alone is converted
    only if something needs its frame."""

    def __init__(self, folder: Path, name: str):
        self.name, self.path = name, Path(folder) / f"{name}.feather"
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


def _log_rows(names: list[LogName], frame: pd.DataFrame, owner: np.ndarray) -> pd.DataFrame:
    """Validated rows of logs of one type -> rows of its table, tagged with source and log
    timestamp; `owner` says which of `names` each row came from. The result is what reading the
    logs one at a time and concatenating gives, row for row."""
    table = LOG_TYPES[names[0].data_type].table
    labels = np.array([n.label for n in names], dtype=object)
    if table in ("market", "fundamentals", "corporate_actions"):
        frame.insert(0, "ticker", labels[owner])
    if table == "fundamentals":
        ids = ["ticker", "period_end", "announcement_date"]
        metrics = [c for c in frame.columns if c not in ids]
        melted = frame.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")
        # log by log, each log metric by metric (a melt of one log at a time)
        n = len(frame)
        order = np.lexsort((np.tile(np.arange(n), len(metrics)),
                            np.repeat(np.arange(len(metrics)), n), np.tile(owner, len(metrics))))  # fmt: skip
        keep = melted["value"].notna().to_numpy()[order]
        owner = np.tile(owner, len(metrics))[order][keep]
        frame = melted.iloc[order[keep]].reset_index(drop=True)
    if table == "corporate_actions":
        # two dividends on one ex-date (a regular and a special) are both paid: one summed row
        frame = (
            frame.assign(_log=owner)
            .groupby(["_log", "ticker", "date", "action"], sort=False, as_index=False)["value"]
            .sum(min_count=1)
        )
        owner = frame.pop("_log").to_numpy()
    if table == "metadata":
        frame = frame.astype(str)
    frame.insert(0, "source", _encoded([n.source for n in names], owner))
    if table in ("market", "fundamentals", "corporate_actions"):  # each row's log's label
        frame["ticker"] = _encoded([n.label for n in names], owner)
    frame["log_ts"] = np.array([n.timestamp for n in names], dtype=np.int64)[owner]
    # one array per column, so the builder frees each column of a batch once it is joined
    return pd.DataFrame({c: frame[c].copy() for c in frame.columns}, copy=False)


def _encoded(labels: list[str], of_row: np.ndarray) -> pd.Categorical:
    """labels' text per row, dictionary-encoded (sorted categories): a batch of a million rows
    names a few thousand tickers, so the rows hold small codes instead of object pointers.
    `of_row` holds, per row, an index into `labels`."""
    categories, inverse = np.unique(np.array(labels, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(inverse[of_row], categories=categories.tolist())


_BUILDER = f"equity_backtest {__version__}"
_BATCH_BYTES = 64 << 20  # logs of one type read together: bounded, so memory stays flat


def _read_logs(new: list[tuple[LogName, Path]], skip_bad_logs: bool, progress: bool):
    """Yield (table, rows, [(path, sha256) of the logs read], [(path, error) of bad logs]) for
    the new logs. Logs of one type and header are read in batches (datalog.parse_many); a batch
    it does not take, or a log that cannot be read, is read alone so a bad one is named."""

    def alone(name: LogName, path: Path, data: bytes | None):
        try:
            if data is None:
                frame = read_log(path, name)
                digest = sha256_file(path)
            else:
                frame = parse_log(data, name, f"datalog file {path.name}")
                digest = hashlib.sha256(data).hexdigest()
        except BadInputError as exc:
            if not skip_bad_logs:
                raise
            return None, None, [], [(path, exc)]
        rows = _log_rows([name], frame, np.zeros(len(frame), dtype=np.int64))
        return LOG_TYPES[name.data_type].table, rows, [(path, digest)], []

    def flush(batch: list[tuple[LogName, Path, bytes]]):
        parsed = parse_many([(n, d) for n, _, d in batch]) if len(batch) > 1 else None
        if parsed is None:
            for name, path, data in batch:
                yield alone(name, path, data)
            return
        frame, owner = parsed
        rows = _log_rows([n for n, _, _ in batch], frame, owner)
        digests = [(p, hashlib.sha256(d).hexdigest()) for _, p, d in batch]
        yield LOG_TYPES[batch[0][0].data_type].table, rows, digests, []

    batches: dict[tuple[str, bytes], list] = {}
    sizes: dict[tuple[str, bytes], int] = {}
    with tqdm(total=len(new), desc="reading datalog", unit="log", disable=not progress,
              leave=False) as bar:  # fmt: skip
        for name, path in new:
            try:
                data = path.read_bytes()
            except OSError:
                yield alone(name, path, None)
                bar.update()
                continue
            key = (name.data_type, data[: data.find(b"\n") + 1])
            batches.setdefault(key, []).append((name, path, data))
            sizes[key] = sizes.get(key, 0) + len(data)
            bar.update()
            if sizes[key] >= _BATCH_BYTES:
                del sizes[key]
                yield from flush(batches.pop(key))
        for key in list(batches):
            yield from flush(batches.pop(key))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """pd.concat(frames, ignore_index=True), emptying `frames`: where every part has the same
    columns and dtypes, one column at a time, each part's column freed once joined (the peak is
    the table and one column, not the parts and the table), dictionary-encoded columns joined
    on the sorted union of their categories."""
    same = all(
        list(f.columns) == list(frames[0].columns)
        and all(_kind(f[c]) == _kind(frames[0][c]) for c in f.columns)
        for f in frames
    )
    if not same:
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
    keys = list(TABLES[table].keys)
    frame = _in_order(frame, [*keys, "log_ts"])
    if TABLES[table].replace_group:
        latest = frame.groupby(keys, dropna=False, observed=True)["log_ts"].transform("max")
        frame = frame[frame["log_ts"] == latest]
    elif keys_increase(frame, keys):  # sorted, one row per key (a first build): nothing to merge
        order = [*keys, *(c for c in frame.columns if c not in keys)]
        frame = frame if list(frame.columns) == order else frame[order]
    else:
        # last non-missing value per column, so a newer partial response does not erase older fields
        frame = frame.groupby(keys, dropna=False, sort=False, observed=True).last().reset_index()
    if table == "fundamentals":
        frame = _changes_only(frame)
    if list(TABLES[table].sort) != keys:  # (rows are in key order already)
        frame = frame.sort_values(list(TABLES[table].sort), kind="stable")
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


_VERSION_GROUP = ["source", "ticker", "metric", "period_end"]


def _changes_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Change-only compaction per metric: a later version of a period's figure (a re-query or a
    restatement with a later announcement date) is kept only if its value differs from the version
    before it. What was public on any date is unchanged; repeated re-queries add no rows."""
    frame = frame.sort_values([*_VERSION_GROUP, "announcement_date"], kind="stable")
    prev = frame.groupby(_VERSION_GROUP, dropna=False, observed=True, sort=False)["value"].shift()
    return frame[~(prev == frame["value"]).to_numpy()]


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


def _empty(table: str) -> pd.DataFrame:
    cols = {**TABLES[table].columns, "log_ts": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})


def build(
    datalog_dir: str | Path,
    datasets_dir: str | Path,
    *,
    skip_bad_logs: bool = False,
    full: bool = False,
    progress: bool = False,
    calendar: str = "XNYS",
) -> BuildResult:
    """Fold the logs not yet in the current version into a new version and switch to it.

    full=True ignores the current version and rebuilds from every log (the bootstrap path).
    `calendar`: the exchange the quality report checks a source's days against where its metadata
    names none.
    A bad log stops the build (BadInputError naming file, row, field) unless skip_bad_logs.
    """
    calendars.checked(calendar)
    datasets_dir = Path(datasets_dir)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    _clear_abandoned_builds(datasets_dir)
    misnamed: list = []
    logs = list_logs(datalog_dir, bad=misnamed)
    if misnamed and not skip_bad_logs:
        raise misnamed[0][1]
    base = None if full else current_version(datasets_dir)
    prev_logs: dict[str, str] = {}
    if base:
        base_manifest = read_manifest(datasets_dir, base)
        prev_logs = {e["file"]: e["sha256"] for e in base_manifest["logs"]}
    new = [(n, p) for n, p in logs if p.name not in prev_logs]
    if base and not new:
        return BuildResult(base, 0, [], {}, up_to_date=True)
    if not logs:
        raise BadInputError(
            f"the datalog {datalog_dir} holds no logfiles; run 01_query_vendor.py first"
        )

    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}  # new rows, per table
    previous: dict[str, _Stored] = {}
    if base:
        previous = {t: _Stored(datasets_dir / base, t) for t in TABLES}
    skipped, used = [p.name for p, _ in misnamed if p.name not in prev_logs], dict(prev_logs)
    for _, exc in misnamed:
        log.warning("skipped bad log: %s", exc)
    read = 0
    for table, frame, digests, bad in _read_logs(new, skip_bad_logs, progress):
        for path, exc in bad:
            log.warning("skipped bad log: %s", exc)
            skipped.append(path.name)
        if table is not None:
            parts[table].append(frame)
        used.update((path.name, digest) for path, digest in digests)
        read += len(digests)

    if base and _reorders_history([previous["fundamentals"].frame(), *parts["fundamentals"]]):
        log.info("new fundamentals land before versions already compacted: rebuilding in full")
        return build(
            datalog_dir,
            datasets_dir,
            skip_bad_logs=skip_bad_logs,
            full=True,
            progress=progress,
            calendar=calendar,
        )
    tables, kept = {}, {}
    same_builder = base and base_manifest["builder"] == _BUILDER
    for t in TABLES:
        frames, parts[t] = [f for f in parts[t] if len(f)], []  # (each part freed once used)
        old = previous.pop(t, None)
        if old is not None and not frames and same_builder and old.exists:
            tables[t] = kept[t] = old.frame()  # no new rows: the previous file is the table
            continue
        folded = None
        if old is not None and len(old) and frames:
            folded = _fold_in(t, old, pd.concat(frames, ignore_index=True))
        if folded is None:
            frames = [
                f
                for f in [None if old is None else old.frame(), *frames]
                if f is not None and len(f)
            ]
            folded = _resolve(t, _concat(frames)) if frames else None  # (parts freed as joined)
        tables[t] = folded if folded is not None else _empty(t)
        del old, folded

    version = _next_version(datasets_dir)
    tmp = datasets_dir / f".{version}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    manifest = {
        "version": version,
        "previous_version": base,
        "builder": _BUILDER,
        "logs": [{"file": f, "sha256": used[f]} for f in sorted(used)],
        "new_logs": read,
        "skipped_logs": skipped,
    }
    # the tables are compressed, written and hashed from Arrow's view of them (Arrow and hashlib
    # work without the GIL) while the quality report reads the frames: on two cores they overlap
    arrow = {
        t: None if t in kept else pa.Table.from_pandas(frame, preserve_index=False)
        for t, frame in tables.items()
    }
    with ThreadPoolExecutor(1, thread_name_prefix="write-tables") as writer:
        rows = {t: len(frame) for t, frame in tables.items()}
        written = writer.submit(_write_tables, arrow, rows, tmp, base and datasets_dir / base)
        quality_report = quality.report(tables, manifest, calendar)
        manifest["tables"] = written.result()
    del arrow
    atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    atomic_write_text(
        tmp / "quality_report.json", json.dumps(quality_report, indent=1, sort_keys=True) + "\n"
    )
    atomic_write_text(tmp / "quality_report.md", quality.markdown(quality_report))
    faults.point("write")
    os.replace(tmp, datasets_dir / version)
    fsync_dir(datasets_dir)
    faults.point("write")  # the version is in place, CURRENT not yet switched
    atomic_write_text(datasets_dir / "CURRENT", version + "\n")
    log.info(
        "dataset %s built from %d new logs (%d skipped)",
        version,
        read,
        len(skipped),
    )
    return BuildResult(
        version, read, skipped, {t: len(f) for t, f in tables.items()}, quality=quality_report
    )


def _write_tables(
    tables: dict[str, pa.Table | None], rows: dict[str, int], folder: Path, base: Path | None
) -> dict:
    """Write each table as folder/<table>.feather; a table given as None is the base version's
    file (kept: the same bytes the builder wrote from the same rows). Row counts and SHA-256."""
    info = {}
    for t, table in tables.items():
        path = folder / f"{t}.feather"
        faults.point("write")
        if table is None:
            shutil.copyfile(base / path.name, path)
        else:
            feather.write_feather(table, path, compression="zstd")
        info[t] = {"rows": rows[t], "sha256": sha256_file(path)}
    return info


def _clear_abandoned_builds(datasets_dir: Path) -> None:
    """Remove `.vNNNNNN.tmp-PID` folders whose builder process is gone (killed mid-build)."""
    for tmp in datasets_dir.glob(".v*.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        if tmp.is_dir() and not (pid.isdigit() and process_alive(int(pid))):
            log.info("removing %s, left by a killed build", tmp.name)
            shutil.rmtree(tmp, ignore_errors=True)


def _next_version(datasets_dir: Path) -> str:
    numbers = [
        int(p.name[1:])
        for p in datasets_dir.iterdir()
        if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit()
    ]
    return f"v{max(numbers, default=0) + 1:06d}"
