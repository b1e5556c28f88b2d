"""A cache of built panels, one per dataset version and panel settings, so that a second backtest
on the same data skips rebuilding the dense arrays (the largest part of 03's start-up).

A cached panel lives in `<datasets_dir>/.panel_cache/<version>-<key>/` (a hidden folder: never
pushed to a shared store, and not a dataset version): the panel as JSON plus one file of its
arrays' bytes (`infra.arraystore`), memory-mapped on load, so loading costs next to nothing.
Nothing read from the cache can run code: datasets folders are shared (a colleague's folder, an
s3:// store), so a pickle there would run whatever anyone with write access put in it. An entry
that cannot be read as a panel (damaged, or planted) is rebuilt with a warning. The key hashes
everything the panel is built from: the version's manifest (so a rebuilt v000001 is another key),
the panel settings, the extra tickers, the source of the code that builds panels and the numpy
and pandas versions (a changed builder is another key). The warnings logged while building are stored with it and logged again on every load, so
a run's log reads the same whether or not the panel came from the cache. Only the two newest
versions keep their cached panels. Writing is best-effort: a read-only folder just means no cache.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..infra import arraystore
from ..infra.storage import file_mode

log = logging.getLogger(__name__)

FOLDER = ".panel_cache"
KEEP_VERSIONS = 2
META, BUFFERS = "panel.json", "buffers.bin"
_BUILDER_SOURCES = (
    "panel.py",
    "panel_fundamentals.py",
    "datasets/__init__.py",
    "datasets/versions.py",
    "datasets/builder.py",
    "datasets/resolve.py",
    "datasets/fold.py",
    "quality.py",
    "vocabulary.py",
    "panel_cache.py",
    "../infra/arraystore.py",
)


def _key(manifest: Path, settings: tuple) -> str:
    digest = hashlib.sha256(manifest.read_bytes())
    digest.update(repr((settings, np.__version__, pd.__version__)).encode())
    here = Path(__file__).parent
    for name in _BUILDER_SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:20]


class _Recorder(logging.Handler):
    """Keeps the warnings the panel builder logs, to replay them on a cached load."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def load_or_build(
    datasets_dir: Path,
    version: str,
    settings: tuple,
    build: Callable,
    types: tuple[type, ...] = (),
):
    """The panel of `version` for `settings`: from the cache when there, else built and cached.
    `types`: the dataclasses a panel is made of (the only classes a cached entry may build)."""
    folder = Path(datasets_dir) / FOLDER
    key = _key(Path(datasets_dir) / version / "manifest.json", settings)
    entry = folder / f"{version}-{key}"
    if entry.is_dir():
        try:
            panel, records = arraystore.read(entry / META, entry / BUFFERS, types)
            records = [(str(n), int(level), str(message)) for n, level, message in records]
        except (arraystore.Unreadable, TypeError, ValueError) as exc:
            log.warning(
                "the cached panel %s could not be read (%s): it is rebuilt from the dataset",
                entry,
                exc,
            )
            shutil.rmtree(entry, ignore_errors=True)
        else:
            for name, level, message in records:
                logging.getLogger(name).log(level, "%s", message)
            return panel
    recorder = _Recorder()
    builder_log = logging.getLogger("equity_backtest.data.panel")
    builder_log.addHandler(recorder)
    try:
        panel = build()
    finally:
        builder_log.removeHandler(recorder)
    if builder_log.isEnabledFor(logging.WARNING):  # else its warnings were not seen to replay
        _store(folder, entry, (panel, recorder.records), version)
    return panel


def _store(folder: Path, entry: Path, payload: tuple, version: str) -> None:
    """Write an entry into a temp folder renamed into place (no fsync: a cache lost in a crash
    is rebuilt)."""
    tmp = None
    try:
        folder.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=folder))
        arraystore.write(payload, tmp / META, tmp / BUFFERS)
        mode = file_mode()
        for p in tmp.iterdir():
            p.chmod(mode)
        tmp.chmod(mode | ((mode & 0o444) >> 2))  # a folder: readable implies searchable
        tmp.rename(entry)
    except (OSError, ValueError, arraystore.Unstorable) as exc:
        log.debug("panel not cached (%s)", exc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    # only the newest versions keep their panels
    versions = sorted({p.name.split("-")[0] for p in folder.glob("v*-*")} | {version})
    for old in versions[:-KEEP_VERSIONS]:
        for stale in folder.glob(f"{old}-*"):
            shutil.rmtree(stale, ignore_errors=True)


def clear(datasets_dir: Path) -> None:
    """Remove every cached panel of a datasets folder."""
    shutil.rmtree(Path(datasets_dir) / FOLDER, ignore_errors=True)
