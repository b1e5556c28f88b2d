"""The decision log (L4): one JSON record per (model, revision, quantisation, prompt version,
ticker, as-of date, sampling settings), append-only and crash-safe.

Layout of the log folder:
    open-<pid>-<n>.jsonl       the shard being written (each record: write, flush, fsync)
    shard-<time>-<pid>-<n>.jsonl  finished shards (renamed atomically when full or at close)
A kill at any moment loses at most the record being written: a torn last line is ignored when
the folder is read. On restart the done keys are read from every shard, open or finished, and
skipped. Finished shards are synced to `sync_to` (any fsspec URL, e.g. s3://bucket/decisions) as
immutable objects; a sync that fails (the server went away) is retried at the next roll-over or
close, and nothing is removed locally, so no decision is lost.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..infra import faults
from ..infra.locks import process_alive

log = logging.getLogger(__name__)

KEY_FIELDS = (
    "model_id",
    "revision",
    "quantisation",
    "prompt_version",
    "ticker",
    "as_of",
    "sampling",
    # a hash of the rendered prompt: another number of periods, a restated figure or a new
    # dataset version is another question, never answered from the log of the old one
    "prompt_sha",
    # the backend, dtype, GGUF file, constrained decoding, reasoning and context length
    # (session.decoding): another way of decoding is another question
    "decoding",
)
RETRY_STATUSES = ("error",)
# shard numbers run across every log of the process, and the open shards it writes are known, so
# two logs on one folder (two models compared in one run) neither share nor adopt a shard
_SHARD_NUMBERS = itertools.count(1)
_HELD: set[Path] = set()
ROLL_EVERY_S = 60.0  # with sync_to: an open shard is finished (and uploaded) after this long
STORE_WAIT_S = 30.0  # the longest a pull at open, or the uploads at close, wait for a store


def decision_key(record: dict) -> str:
    """A stable id of what was asked (not of what was answered)."""
    text = json.dumps([str(record.get(f, "")) for f in KEY_FIELDS])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def read_records(folder: str | Path) -> Iterator[dict]:
    """Every complete record in the folder's shards (a torn last line is skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn by a crash mid-write
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def read_frame(folder: str | Path) -> pd.DataFrame:
    """The log as a table, one row per key (the latest record of a key wins)."""
    rows = list(read_records(folder))
    if not rows:
        return pd.DataFrame(columns=[*KEY_FIELDS, "key", "status", "decision", "confidence"])
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates("key", keep="last").reset_index(drop=True)


class DecisionLog:
    """Appends records to local shards and syncs finished shards."""

    def __init__(
        self,
        folder: str | Path,
        *,
        shard_size: int = 500,
        sync_to: str | None = None,
        roll_every_s: float = ROLL_EVERY_S,
        store_wait_s: float = STORE_WAIT_S,
    ):
        self.folder = Path(folder)
        self.store_wait_s = store_wait_s
        self._closed = False
        self.roll_every_s = roll_every_s
        self._opened_at = 0.0
        self._syncing: threading.Thread | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.sync_to = sync_to
        self._adopt_orphans()
        self._bounded(self.pull, "pulling decision shards from")
        self.latest: dict[str, dict] = {r["key"]: r for r in read_records(self.folder)}
        self.done: set[str] = {
            k for k, r in self.latest.items() if r.get("status") not in RETRY_STATUSES
        }
        self._fh = None
        self._count = 0
        self._n = 0
        self._path: Path | None = None

    def _adopt_orphans(self) -> None:
        """Open shards of processes that are gone (killed) become finished shards, without a
        torn last line."""
        for path in sorted(self.folder.glob("open-*.jsonl")):
            pid = int(path.name.split("-")[1])
            if path.absolute() in _HELD or (pid != os.getpid() and process_alive(pid)):
                continue
            complete = path.read_text(encoding="utf-8")
            complete = complete[: complete.rfind("\n") + 1]
            final = self.folder / f"shard-{path.stem.removeprefix('open-')}-adopted.jsonl"
            tmp = final.with_name("." + final.name)
            tmp.write_text(complete, encoding="utf-8")
            os.replace(tmp, final)
            path.unlink()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def append(self, record: dict) -> None:
        """Write one record durably (flush + fsync) before returning."""
        if self._fh is None:
            self._n = next(_SHARD_NUMBERS)
            self._path = self.folder / f"open-{os.getpid()}-{self._n}.jsonl"
            _HELD.add(self._path.absolute())
            self._fh = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 (held across appends)
            self._opened_at = time.monotonic()
        self._fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        faults.point("decision")
        self._count += 1
        self.latest[record["key"]] = record
        if record.get("status") not in RETRY_STATUSES:
            self.done.add(record["key"])
        if self._count >= self.shard_size or (
            self.sync_to and time.monotonic() - self._opened_at >= self.roll_every_s
        ):
            self._roll()  # full, or open long enough: a kill now loses nothing in the store

    def _roll(self) -> None:
        if self._fh is None:
            return
        self._fh.close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        final = self.folder / f"shard-{stamp}-{os.getpid()}-{self._n}.jsonl"
        os.replace(self._path, final)
        _HELD.discard(self._path.absolute())
        self._fh, self._count = None, 0
        self._sync_in_background()

    def _sync_in_background(self) -> None:
        """Upload in a thread, so a slow or hung store never holds up the decisions."""
        if not self.sync_to or (self._syncing is not None and self._syncing.is_alive()):
            return
        self._syncing = threading.Thread(target=self.sync, name="decision-sync", daemon=True)
        self._syncing.start()

    def close(self) -> None:
        """Roll the open shard and upload what is finished, waiting at most `store_wait_s` in
        all for the store: a hung one is reported and the shards stay local for the next run to
        send. Closing twice does nothing the second time."""
        if self._closed:
            return
        self._closed = True
        self._roll()
        if not self.sync_to:
            return
        deadline = time.monotonic() + self.store_wait_s
        if self._syncing is not None:
            self._syncing.join(max(0.0, deadline - time.monotonic()))
            if self._syncing.is_alive():
                self._late("uploading decision shards to")
                return
        self._bounded(self.sync, "uploading decision shards to", deadline)

    def _bounded(self, work, doing: str, deadline: float | None = None) -> None:
        """Run `work` on a thread and wait for it until `deadline` (default: store_wait_s from
        now); past it the run goes on and says so (the thread is left to finish or fail)."""
        if not self.sync_to:
            return
        deadline = deadline if deadline is not None else time.monotonic() + self.store_wait_s
        thread = threading.Thread(target=work, name="decision-store", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            self._late(doing)

    def _late(self, doing: str) -> None:
        log.warning(
            "%s %s took over %.0f s (llm_store_timeout_s); going on with the shards in %s, "
            "which the next run sends",
            doing,
            self.sync_to,
            self.store_wait_s,
            self.folder,
        )

    def pull(self) -> int:
        """Shards in `sync_to` that this folder lacks are copied in first, so a run on a fresh
        machine (or one whose local log was lost) resumes from the store instead of asking
        again. A store that cannot be reached is reported, and the run goes on from what is
        local."""
        if not self.sync_to:
            return 0
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(self.sync_to)
            root = root.rstrip("/")
            if not fs.exists(root):
                return 0
            here = {p.name for p in self.folder.glob("*.jsonl")}
            got = 0
            for remote in sorted(fs.ls(root, detail=False)):
                name = remote.rsplit("/", 1)[-1]
                if name.startswith("shard-") and name.endswith(".jsonl") and name not in here:
                    tmp = self.folder / f".{name}.part"
                    fs.get_file(remote, str(tmp))
                    os.replace(tmp, self.folder / name)
                    got += 1
            if got:
                log.info("pulled %d decision shards from %s", got, self.sync_to)
            return got
        except Exception as exc:  # the store is away: go on with the local log
            log.warning("could not pull decision shards from %s (%s)", self.sync_to, exc)
            return 0

    def sync(self) -> int:
        """Upload finished shards not yet in the remote store; never overwrite one there."""
        if not self.sync_to:
            return 0
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(self.sync_to)
            root = root.rstrip("/")
            there = (
                {p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}
                if fs.exists(root)
                else set()
            )
            sent = 0
            for path in sorted(self.folder.glob("shard-*.jsonl")):
                if path.name not in there:
                    fs.put_file(str(path), f"{root}/{path.name}")
                    sent += 1
            return sent
        except Exception as exc:  # the store is away: keep the shards, try again later
            log.warning("decision log sync to %s failed (%s); will retry", self.sync_to, exc)
            return 0
