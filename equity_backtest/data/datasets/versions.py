"""Reading dataset versions: which one is current, its manifest, its tables.

Format 2 (manifest "format": 2) stores a table with a partition column as one file per calendar
year, <table>/<year>.feather, each in table order; format 1 (no "format" in the manifest) stored
every table whole as <table>.feather. Both read the same way, through load_table(s)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from ...errors import BadInputError
from ...infra import heap
from ...infra.ahead import in_order
from ..vocabulary import TABLES
from .resolve import _concat

FORMAT = 2  # what the builder writes


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
    datasets_dir: str | Path, version: str | None = None, by_column: tuple[str, ...] = ()
) -> tuple[str, dict[str, pd.DataFrame]]:
    """Read every table of a dataset version (CURRENT by default); the tables named in
    `by_column` come as Columns, read a column at a time when asked."""
    version = version or current_version(datasets_dir)
    if version is None:
        raise BadInputError(f"no dataset in {datasets_dir}; run 02_build_datasets.py first")
    folder = Path(datasets_dir) / version
    if not (folder / "manifest.json").is_file():
        raise BadInputError(f"dataset version {version} not found in {datasets_dir}")
    return version, {
        name: Columns(folder, name) if name in by_column else load_table(folder, name)
        for name in TABLES
    }


class Columns:
    """A table of a version folder read one column at a time, each read decompressing only that
    column: for a reader that needs the columns of a CRSP-sized market table one after another
    (the panel), so the table is never whole in memory beside what is built from it. Each column
    has the whole-table read's dtype; its rows come in the stored order (year part by year part
    where the table is partitioned), the same for every column, which a reader that places rows
    by their keys does not mind."""

    def __init__(self, folder: Path, name: str):
        self.files, self.name = table_files(folder, name), name

    def names(self) -> list[str]:
        """The table's columns, in their stored order."""
        if not self.files:
            return list(_empty(self.name).columns)
        return list(_read(self.files[0], schema_only=True).names)

    def __getitem__(self, column: str) -> pd.Series:
        if not self.files:
            return _empty(self.name)[column]
        tables = [_read(p, [column]) for p in self.files]
        if pa.types.is_dictionary(tables[0].schema.types[0]):  # on the union of the categories
            return _concat([t.to_pandas() for t in tables])[column]
        return pa.concat_tables(tables).to_pandas()[column]  # (one copy out of the chunks)

    def parts(self, columns: list[str], ahead: int = 2) -> Iterator[pd.DataFrame]:
        """These columns of each stored file (a year part, or the whole table), in stored order:
        for a reader that can work part by part, so no column is ever joined whole. The next
        `ahead` files are read (and decompressed, which Arrow does without the GIL) on threads
        while the caller works on this one."""
        if not self.files:
            yield _empty(self.name)[columns]
            return
        yield from in_order((functools.partial(_frame, p, columns) for p in self.files), ahead)

    def rows_on(self, days: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The rows of these days, these columns: only the year parts of those days are read."""
        years = {str(y) for y in np.asarray(days).astype("datetime64[Y]").astype(int) + 1970}
        wanted = pa.array(np.asarray(days, dtype="datetime64[ns]"))
        frames = []
        for path in self.files:
            if path.parent.name == self.name and path.stem not in years:
                continue
            table = _read(path, columns)
            frames.append(table.filter(pc.is_in(table["date"], value_set=wanted)).to_pandas())
        return _concat(frames) if frames else _empty(self.name)[columns]


def _frame(path: Path, columns: list[str]) -> pd.DataFrame:
    return _read(path, columns).to_pandas()


def _read(path: Path, columns: list[str] | None = None, schema_only: bool = False):
    """A table file of a version (these columns, or only its schema); one that Arrow cannot read
    is named, with the way out, instead of a traceback."""
    try:
        if schema_only:
            with pa.memory_map(str(path)) as source:
                return pa.ipc.open_file(source).schema
        return feather.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(
            f"{path}: this dataset file cannot be read ({exc}); rebuild the version from the "
            "datalog with 02_build_datasets.py --full"
        ) from None


def table_files(folder: Path, name: str) -> list[Path]:
    """The files that hold a table of a version folder: <name>.feather (format 1, or a table
    without a partition), or its year parts in year order; none for a table added since."""
    whole, parts = Path(folder) / f"{name}.feather", Path(folder) / name
    if whole.is_file():
        return [whole]
    return sorted(parts.glob("*.feather")) if parts.is_dir() else []


def load_table(folder: Path, name: str) -> pd.DataFrame:
    """One table of a version folder, in table order whatever its format; a table added after
    the version was built reads empty. Year parts are read a column at a time and each column
    put in table order as it comes, so the table is held about once, not once per step."""
    files = table_files(folder, name)
    if len(files) <= 1:
        return _read(files[0]).to_pandas() if files else _empty(name)
    columns = Columns(folder, name)
    order = _order(name, columns)
    out = {}
    for col in columns.names():
        column = columns[col]
        out[col] = column if order is None else column.array.take(order)
        del column
        heap.release_freed_memory()
    return pd.DataFrame(out, copy=False)


def joined(name: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """A partitioned table's year parts (each in table order, years rising) as the whole table:
    the frame format 1 stored, dictionary-encoded columns on the sorted union of their values.
    Empties `parts`."""
    if len(parts) <= 1:
        return parts.pop() if parts else _empty(name)
    frame = _concat(parts)
    order = _order(name, frame)
    if order is None:
        return frame
    return pd.DataFrame({c: frame.pop(c).array.take(order) for c in list(frame.columns)})


def _order(name: str, parts) -> np.ndarray | None:
    """The row order that puts a partitioned table's year parts, joined year after year, in
    table order (None: they are in it): a table's order goes by the columns before its
    partition column, then the date, so one stable sort by those columns' codes gives it.
    `parts`: the joined frame, or Columns."""
    sort = list(TABLES[name].sort)
    codes = None
    for col in sort[: sort.index(TABLES[name].partition)]:
        column = parts[col]
        if not isinstance(column.dtype, pd.CategoricalDtype) or column.isna().any():
            frame = pd.DataFrame({c: parts[c] for c in sort})  # (text not encoded: by value)
            return np.lexsort([frame[c].to_numpy() for c in reversed(sort)])
        code = column.cat.codes.to_numpy().astype(np.int64)
        codes = code if codes is None else codes * (len(column.cat.categories) + 1) + code
    if codes is None or len(codes) < 2 or (np.diff(codes) >= 0).all():
        return None
    return np.argsort(codes, kind="stable")


def _empty(table: str) -> pd.DataFrame:
    cols = {**TABLES[table].columns, "log_ts": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})
