"""A cache of built panels, one per dataset version and panel settings, so that a second backtest
on the same data skips rebuilding the dense arrays (the largest part of 03's start-up).

A cached panel lives in `<datasets_dir>/.panel_cache/<version>-<key>/` (a hidden folder: never
pushed to a shared store, and not a dataset version): the panel pickled with its arrays out of
band in one file that is memory-mapped on load, so loading costs next to nothing. The key hashes
everything the panel is built from: the version's manifest (so a rebuilt v000001 is another key),
the panel settings, the extra tickers, the source of the code that builds panels and the numpy
and pandas versions (a changed builder is another key). The warnings logged while building are stored with it and logged again on every load, so
a run's log reads the same whether or not the panel came from the cache. Only the two newest
versions keep their cached panels. Writing is best-effort: a read-only folder just means no cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..infra.storage import file_mode

log = logging.getLogger(__name__)

FOLDER = ".panel_cache"
KEEP_VERSIONS = 2
_BUILDER_SOURCES = (
    "panel.py",
    "datasets/__init__.py",
    "datasets/versions.py",
    "datasets/builder.py",
    "datasets/resolve.py",
    "datasets/fold.py",
    "quality.py",
    "vocabulary.py",
    "panel_cache.py",
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


def load_or_build(datasets_dir: Path, version: str, settings: tuple, build: Callable):
    """The panel of `version` for `settings`: from the cache when there, else built and cached."""
    folder = Path(datasets_dir) / FOLDER
    key = _key(Path(datasets_dir) / version / "manifest.json", settings)
    entry = folder / f"{version}-{key}"
    if (entry / "panel.pkl").is_file():
        try:
            panel, records = _read(entry)
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            log.debug("panel cache %s unreadable (%s): rebuilding", entry.name, exc)
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


def _read(entry: Path) -> tuple:
    """Unpickle an entry whose arrays' memory is the buffers file, mapped copy-on-write: nothing
    is read until used, and an array the engine writes to is its own private copy."""
    spans = json.loads((entry / "buffers.json").read_text())
    mapped = np.memmap(entry / "buffers.bin", dtype=np.uint8, mode="c") if spans else None
    buffers = [mapped[start : start + size] for start, size in spans]
    return pickle.loads((entry / "panel.pkl").read_bytes(), buffers=buffers)


def _store(folder: Path, entry: Path, payload: tuple, version: str) -> None:
    """Write an entry into a temp folder renamed into place (no fsync: a cache lost in a crash
    is rebuilt). The arrays go out of band (pickle protocol 5) into one aligned buffers file."""
    tmp = None
    try:
        folder.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=folder))
        buffers: list[pickle.PickleBuffer] = []

        def out_of_band(buffer: pickle.PickleBuffer) -> bool:  # small arrays stay in the pickle
            if buffer.raw().nbytes < 1 << 16:
                return True
            buffers.append(buffer)
            return False

        data = pickle.dumps(payload, protocol=5, buffer_callback=out_of_band)
        spans, offset = [], 0
        with open(tmp / "buffers.bin", "wb") as fh:
            for buffer in buffers:
                raw = buffer.raw()
                offset += -offset % 64  # aligned for any dtype
                fh.seek(offset)
                fh.write(raw)
                spans.append((offset, raw.nbytes))
                offset += raw.nbytes
        (tmp / "buffers.json").write_text(json.dumps(spans))
        (tmp / "panel.pkl").write_bytes(data)
        mode = file_mode()
        for p in tmp.iterdir():
            p.chmod(mode)
        tmp.chmod(mode | ((mode & 0o444) >> 2))  # a folder: readable implies searchable
        tmp.rename(entry)
    except OSError as exc:
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
