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
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from ..infra.storage import link_or_copy
from .market_checks import read_frame

FOLDER = "quality.parts"
FORMAT = 1
_COVERAGE = "coverage.feather"  # every part's coverage rows, with their keys (a few hundred)
_RATIOS = "ratios"  # a file per part: its market-cap ratios (ticker, ratio), by key


class Memo:
    """`parts`: per source, the SHA-256 of each of its market parts, in the report's order;
    `made_from`: the builder and the SHA-256 of the constituents and fundamentals tables;
    `base`: the version folder whose kept results may be taken."""

    def __init__(self, parts: dict[str, list[str]], made_from: dict[str, str], base: Path | None):
        self.parts, self.made_from, self.base = parts, made_from, base
        self._coverage = _read_coverage(base / FOLDER / _COVERAGE) if base else {}
        self._made: dict[str, dict[str, pd.DataFrame]] = {"coverage": {}, "ratios": {}}

    def coverage(self, source: str, part: int, make: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """The coverage rows of a source's part (quality._coverage): kept, or made."""
        name = self._key("coverage", source, part, *self._tables("constituents", "fundamentals"))
        frame = self._coverage.get(name)
        self._made["coverage"][name] = make() if frame is None else frame
        return self._made["coverage"][name]

    def ratios(
        self, source: str, part: int, following: object, make: Callable[[], pd.DataFrame]
    ) -> pd.DataFrame:
        """The market-cap ratios of a source's part (consistency.cap_ratios), whose period ends
        run to `following` (the next part's first day; None for the last): kept, or made."""
        name = self._key("ratios", source, part, *self._tables("fundamentals"), str(following))
        frame = None
        if self.base and (self.base / FOLDER / _RATIOS / f"{name}.feather").is_file():
            try:
                frame = read_frame(self.base / FOLDER / _RATIOS / f"{name}.feather")
            except (OSError, ValueError, pa.ArrowException):
                frame = None
        self._made["ratios"][name] = make() if frame is None else frame
        return self._made["ratios"][name]

    def save(self, folder: Path) -> None:
        """Keep what this build used (made, or taken: shared, not written again) in the new
        version's folder."""
        (folder / FOLDER / _RATIOS).mkdir(parents=True)
        frames = [
            f.rename_axis("month").reset_index().assign(key=k)
            for k, f in self._made["coverage"].items()
        ]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"key": []})
        feather.write_feather(table, folder / FOLDER / _COVERAGE, compression="zstd")
        for name, frame in self._made["ratios"].items():
            path = folder / FOLDER / _RATIOS / f"{name}.feather"
            kept = self.base / FOLDER / _RATIOS / path.name if self.base else None
            if kept is not None and kept.is_file():
                link_or_copy(kept, path)
            else:
                feather.write_feather(frame, path, compression="zstd")

    def _tables(self, *names: str) -> list[str]:
        return [self.made_from[n] for n in names]

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
    for name, rows in table.groupby("key", sort=False):
        rows = rows.drop(columns="key").dropna(axis=1, how="all").set_index("month")
        rows.index = rows.index.astype(object)
        out[str(name)] = rows.astype("int64").rename_axis(None)
    return out
