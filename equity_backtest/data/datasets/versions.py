"""Reading dataset versions: which one is current, its manifest, its tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.feather as feather

from ...errors import BadInputError
from ..vocabulary import TABLES


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
    column, as the whole-table read gives it: for a reader that needs the columns of a
    CRSP-sized market table one after another (the panel), so the table is never whole in
    memory beside what is built from it."""

    def __init__(self, folder: Path, name: str):
        self.path, self.name = Path(folder) / f"{name}.feather", name

    def __getitem__(self, column: str) -> pd.Series:
        if not self.path.is_file():
            return _empty(self.name)[column]
        return feather.read_table(self.path, columns=[column]).to_pandas()[column]


def load_table(folder: Path, name: str) -> pd.DataFrame:
    """One table of a version folder; a table added after the version was built reads empty."""
    path = Path(folder) / f"{name}.feather"
    return feather.read_feather(path) if path.is_file() else _empty(name)


def _empty(table: str) -> pd.DataFrame:
    cols = {**TABLES[table].columns, "log_ts": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})
