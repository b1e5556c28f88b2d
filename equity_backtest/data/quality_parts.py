"""The quality report's results per market part, kept in a version (quality.parts/) for the
next build. A part's rows of the coverage table read only that part's (month, ticker) pairs,
the constituent lists and the fundamentals; its market-cap ratios only its own rows at the
period ends that fall between its first day and the next part's, and the shares reported. A
build whose new day touched one year part therefore makes that part's results and takes the
others' from the version before, reading none of their pairs or month-end rows.

Each result is keyed by what it was made from: the kind, the source, the part's SHA-256, the
SHA-256 of the tables it reads, the builder, the next part's first day (ratios) and FORMAT
(raise it when the way a result is made changes). A key the base version does not hold, or
holds in a file that cannot be read, is made again: a memo never changes the report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from ..infra.storage import link_or_copy
from .market_checks import read_frame

FOLDER = "quality.parts"
FORMAT = 1
_COVERAGE = "coverage.feather"  # every part's coverage rows, with their keys (a few hundred)
_RATIOS = "ratios"  # a file per part: its market-cap ratios (ticker, day, ratio), by key


class Memo:
    """What the report takes (kept_*) from the base version and what it uses in this one
    (taken, or made by the report and given back with keep_*), written by save().
    `parts`: per source, the SHA-256 of each of its market parts, in the report's order;
    `made_from`: the builder and the SHA-256 of the constituents and fundamentals tables;
    `base`: the version folder whose kept results may be taken."""

    def __init__(self, parts: dict[str, list[str]], made_from: dict[str, str], base: Path | None):
        self.parts, self.made_from, self.base = parts, made_from, base
        self._coverage = _read_coverage(base / FOLDER / _COVERAGE) if base else {}
        self._used: dict[str, dict[str, pd.DataFrame]] = {"coverage": {}, "ratios": {}}
        self._taken: set[str] = set()  # ratio files taken from the base version (shared)

    def kept_coverage(self, source: str, part: int) -> pd.DataFrame | None:
        """The coverage rows (quality._coverage) the base version keeps for a source's part."""
        name = self._coverage_key(source, part)
        frame = self._coverage.get(name)
        if frame is not None:
            self._used["coverage"][name] = frame
        return frame

    def keep_coverage(self, source: str, part: int, frame: pd.DataFrame) -> None:
        name = self._coverage_key(source, part)
        self._used["coverage"][name] = frame

    def kept_ratios(self, source: str, part: int, following: object) -> pd.DataFrame | None:
        """The market-cap ratios (consistency.cap_ratios) the base version keeps for a
        source's part whose period ends run to `following` (the next part's first day; None
        for the last); None where it keeps none that can be read."""
        name = self._ratios_key(source, part, following)
        path = self.base / FOLDER / _RATIOS / f"{name}.feather" if self.base else None
        if path is None or not path.is_file():
            return None
        try:
            frame = read_frame(path)
        except (OSError, ValueError, pa.ArrowException):
            return None
        if not {"ticker", "ratio"} <= set(frame) or frame["ratio"].dtype != float:
            return None  # (a file this code did not write)
        self._used["ratios"][name] = frame
        self._taken.add(name)
        return frame

    def keep_ratios(self, source: str, part: int, following: object, frame: pd.DataFrame) -> None:
        name = self._ratios_key(source, part, following)
        self._used["ratios"][name] = frame

    def save(self, folder: Path) -> None:
        """Keep what this build used (made, or taken: shared, not written again) in the new
        version's folder."""
        (folder / FOLDER / _RATIOS).mkdir(parents=True)
        frames = [
            f.rename_axis("month").reset_index().assign(key=k)
            for k, f in self._used["coverage"].items()
        ]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"key": []})
        feather.write_feather(table, folder / FOLDER / _COVERAGE, compression="zstd")
        for name, frame in self._used["ratios"].items():
            path = folder / FOLDER / _RATIOS / f"{name}.feather"
            if name in self._taken:
                link_or_copy(self.base / FOLDER / _RATIOS / path.name, path)
            else:
                feather.write_feather(frame, path, compression="zstd")

    def _coverage_key(self, source: str, part: int) -> str:
        tables = [self.made_from["constituents"], self.made_from["fundamentals"]]
        return self._key("coverage", source, part, *tables)

    def _ratios_key(self, source: str, part: int, following: object) -> str:
        return self._key("ratios", source, part, self.made_from["fundamentals"], str(following))

    def _key(self, kind: str, source: str, part: int, *made_from: str) -> str:
        """The SHA-256 of what a result is made from."""
        said = [FORMAT, kind, source, self.parts[source][part], self.made_from["builder"]]
        return hashlib.sha256(json.dumps([*said, *made_from]).encode("utf-8")).hexdigest()


def _read_coverage(path: Path) -> dict[str, pd.DataFrame]:
    """Kept coverage rows by key, each with the columns it was made with (counts as int64,
    months as text); nothing where the file is missing or unreadable (all made again)."""
    try:
        table = feather.read_table(path, memory_map=False).to_pandas()
    except (OSError, ValueError, pa.ArrowException):
        return {}
    if "key" not in table or "month" not in table:
        return {}
    out = {}
    try:
        for name, rows in table.groupby("key", sort=False):
            rows = rows.drop(columns="key").dropna(axis=1, how="all").set_index("month")
            rows.index = rows.index.astype(str).astype(object)
            out[str(name)] = rows.astype("int64").rename_axis(None)
    except (TypeError, ValueError):  # (not counts: a file this code did not write)
        return {}
    return out
