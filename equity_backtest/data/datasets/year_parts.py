"""Year parts (dataset format 2): a partitioned table cut into one frame per calendar year of its
partition column, and new rows folded into the parts of the years they fall in only. A new day
then reads, rewrites and hashes one year's file; the other years' files are the previous
version's, shared (hard-linked) rather than written again."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from ...errors import BadInputError
from ...infra import heap
from ...infra.storage import link_or_copy, sha256_file
from .. import market_checks
from ..vocabulary import CATEGORICAL, TABLES
from .fold import _fold_in, _Stored
from .resolve import _concat, _resolve, _sorted_categories, alike
from .versions import joined, table_files


def split(
    name: str, frame: pd.DataFrame, encode: bool = True
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(year, rows of that year) for each year the table's partition column holds, years rising,
    rows in their order within the table. encode=True recodes dictionary-encoded columns on the
    values each part holds: the part a fold of that year alone gives, so a build from scratch
    and an incremental build write the same bytes."""
    if not len(frame):
        return
    year = _years(frame[TABLES[name].partition])
    order = np.argsort(year, kind="stable")  # (small integers: a radix sort)
    for rows in np.split(order, np.flatnonzero(np.diff(year[order])) + 1):
        part = {c: frame[c].array.take(rows) for c in frame.columns}
        if encode:
            part = {
                c: _sorted_categories(pd.Series(v)) if c in CATEGORICAL else v
                for c, v in part.items()
            }
        yield f"{year[rows[0]]:04d}", pd.DataFrame(part)


class ByYear:
    """A partitioned table built from scratch, cut by year as its rows arrive: each batch of
    parsed rows is cut when it is read (and freed), and each year's rows are resolved alone
    when its part is written. A key holds its date, so no key spans two years and each year
    resolves as it does within the whole table (split() of it); the peak is the rows and one
    year's working copy, not the batches and then the table beside them. A batch whose columns
    or their kinds differ from the first is kept whole, and the table is then resolved whole
    (it gives every part all of its columns), from the rows cut so far and the batches kept."""

    def __init__(self, name: str):
        self.name = name
        self.pieces: dict[str, list[pd.DataFrame]] = {}  # year -> rows cut from batches
        self.first: pd.DataFrame | None = None  # (the first batch's columns, no rows)
        self.whole: list[pd.DataFrame] = []  # batches kept as they came

    def add(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        if self.whole or (self.first is not None and not alike([self.first, frame])):
            self.whole.append(frame)
            return
        if self.first is None:
            self.first = frame.iloc[:0]
        heap.release_freed_memory()  # (the last batch's pages back before this one is cut)
        for year, rows in split(self.name, frame, encode=False):
            self.pieces.setdefault(year, []).append(rows)

    def parts(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """(year, part) in year order, as split() gives them of the whole table resolved."""
        years = sorted(self.pieces)
        if self.whole:  # (the rows' order does not matter: resolving sorts them by key)
            frames = [rows for year in years for rows in self.pieces.pop(year)] + self.whole
            self.whole = []
            yield from split(self.name, _resolve(self.name, _concat(frames)))
            return
        for year in years:
            yield from split(self.name, _resolve(self.name, _concat(self.pieces.pop(year))))


def _years(dates: pd.Series) -> np.ndarray:
    values = dates.to_numpy()
    if pd.isna(values).any():  # (the datalog's checks refuse a market row without a date)
        raise ValueError("a partitioned table's partition column holds a missing date")
    return (values.astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.int16)


def fold(
    name: str, digests: BaseDigests, frames: list[pd.DataFrame], share: bool
) -> dict[str, pd.DataFrame | None]:
    """The parts of the table after the new rows `frames` join the base version's: per year,
    the folded frame, or None where the year has no new rows and its file is shared as it is
    (share=False, when another builder wrote the base, resolves those years again). New rows
    with a column the table lacks rewrite every part, as a build from scratch has it in all.
    `digests`: the base version's (its folder, and each part read is checked against its
    manifest)."""
    base = digests.base
    stored = {path.stem: path for path in table_files(base, name)}
    columns = set(_Stored(base, name, min(stored)).columns) if stored else set()
    if any(set(f.columns) - columns for f in frames):  # a new column: every part gets it
        table = whole(name, base, dict.fromkeys(stored))
        return dict(split(name, _resolve(name, _concat([table, *frames]))))
    new = dict(split(name, _concat(frames), encode=False)) if frames else {}
    parts: dict[str, pd.DataFrame | None] = {}
    for year in sorted(set(stored) | set(new)):
        rows = new.pop(year, None)
        if year in stored and (rows is not None or not share):
            digests.checked(f"{name}/{year}.feather")
        old = _Stored(base, name, year) if year in stored else None
        if rows is None:
            parts[year] = None if share else _resolve(name, old.frame())
            continue
        folded = _fold_in(name, old, rows) if old is not None and len(old) else None
        if folded is None:
            previous = old.frame() if old is not None else None
            pieces = [f for f in (previous, rows) if f is not None and len(f)]
            folded = _resolve(name, _concat(pieces))
        parts[year] = folded
    return parts


def whole(name: str, base: Path, parts: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """The table the parts make (shared ones read from the base version), in table order."""
    frames = [  # (joined() takes the frames' columns: the folded parts stay whole)
        _Stored(base, name, y).frame() if f is None else f.copy(deep=False)
        for y, f in parts.items()
    ]
    return joined(name, frames)


def checked_part(
    path: Path, frame: pd.DataFrame | None, base_part: Path | None
) -> dict[str, market_checks.Summary]:
    """The market checks' summaries, by source, of the part just written at `path` from
    `frame`, saved beside it (<year>.checks/); for a part shared from the base version (frame
    None), the base part's summaries, shared too (made from the file where the base has none
    whole)."""
    target = path.with_suffix(".checks")
    if frame is None:
        kept = base_part.with_suffix(".checks")
        try:  # (pairs and month-end rows: read where the report makes the part's results)
            later = ("pairs", "month_ends")
            summaries = market_checks.load(kept, later, lambda s: _summaries(path)[s])
            if not summaries or any(set(s) != market_checks.keys() for s in summaries.values()):
                raise ValueError("incomplete")
        except (OSError, ValueError, pa.ArrowException):
            frame = feather.read_feather(path)
        else:
            share_tree(kept, target)
            return summaries
    summaries = _summaries(frame)
    market_checks.save(summaries, target)
    return summaries


def _summaries(part: pd.DataFrame | Path) -> dict[str, market_checks.Summary]:
    """A part's market checks' summaries, by source (`part`: its rows, or its file)."""
    frame = feather.read_feather(part) if isinstance(part, Path) else part
    sources = frame["source"]
    names = sources.cat.categories if isinstance(sources.dtype, pd.CategoricalDtype) else sources.unique()  # fmt: skip
    return {
        str(s): market_checks.summarise(frame if len(names) == 1 else frame[(sources == s).to_numpy()])
        for s in names
    }  # fmt: skip


class BaseDigests:
    """The SHA-256 of every file the base version's manifest names, hashed on one thread from
    the start of an incremental build (file reads and hashing run without the GIL, so on a
    second core, beside the build's own work) and compared with the manifest's: a file the
    build reads before it reads it (checked), a file it shares before the new version is
    switched (shared, then verify). A damaged previous version is refused, never passed on.
    The newest year parts go first (a new day folds into them first); the rest in the
    manifest's order. A context manager: what is not hashed when the build ends is dropped."""

    def __init__(self, base: Path | None, tables: dict):
        self.base = base
        self._known: dict[str, str] = {}  # a file's name in a version folder -> its SHA-256
        self._shared: list[str] = []  # the files shared with the new version, to verify
        newest = []
        for table, entry in tables.items():
            if "parts" in entry:
                years = sorted(entry["parts"])
                self._known.update(
                    (f"{table}/{y}.feather", entry["parts"][y]["sha256"]) for y in years
                )
                newest += [f"{table}/{y}.feather" for y in years[-1:]]
            else:
                self._known[f"{table}.feather"] = entry["sha256"]
        order = newest + [n for n in self._known if n not in newest]
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="base-digests")
        self._hashes = {n: self._pool.submit(sha256_file, base / n) for n in order} if base else {}

    def __enter__(self) -> BaseDigests:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def shared(self, name: str) -> str:
        """The SHA-256 the base version's manifest names for its file `name` (a file shared
        with the new version), which verify() checks later; computed now where none is named."""
        self._shared.append(name)
        return self._known.get(name) or self.checked(name)

    def verify(self) -> None:
        """Check every shared file (waiting for its hash), as checked() does."""
        for name in self._shared:
            self.checked(name)

    def checked(self, name: str) -> str:
        """The SHA-256 of the base version's file `name` (table/year.feather or table.feather),
        refused where it is not the one the base version's manifest names."""
        path = self.base / name
        future = self._hashes.get(name)
        digest = future.result() if future is not None else sha256_file(path)
        known = self._known.get(name)
        if known and digest != known:
            raise BadInputError(
                f"{path}: the dataset version this build starts from is damaged (its SHA-256 is "
                "not the one its manifest names); rebuild from the datalog with "
                "02_build_datasets.py --full"
            )
        return digest


def share_tree(source: Path, target: Path) -> None:
    """A folder of kept checks (<source>/<frame>.feather) of the previous version, shared."""
    for file in source.rglob("*.feather"):
        (target / file.parent.name).mkdir(parents=True, exist_ok=True)
        link_or_copy(file, target / file.parent.name / file.name)
