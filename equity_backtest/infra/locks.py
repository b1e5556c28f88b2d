"""Locks and owners (O1, O2): who is writing a store or a folder, and whether they still run.

A stage lock `<store>/.lock-<stage>` keeps two cron runs of a stage from writing one shared store
at once. An owner file `<folder>/.owner.json` marks a hidden work folder (a run or a sweep in
progress) as belonging to a live process, so that cleaning up after killed runs never touches
the work of a run that is still going. Both record pid, host and start time, and both are written
complete before they appear (temp file + link), so a reader never sees an empty one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
from pathlib import Path

from ..errors import LockHeldError

log = logging.getLogger(__name__)
OWNER = ".owner.json"
UNREADABLE_GRACE_S = 10.0  # an unreadable lock older than this was left by a crash


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (for stale locks, owners and shards)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _exited(pid)


def _exited(pid: int) -> bool:
    """A killed process whose parent has not collected it yet (a zombie) still answers kill(0):
    on Linux its state in /proc says it is gone, so its locks and marks are stale."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux) or it went meanwhile: trust kill(0)
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] in ("Z", "X")


def _me() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": dt.datetime.now(dt.UTC).isoformat(),
    }


def _create(path: Path, record: dict) -> bool:
    """Create `path` holding `record`, atomically and only if it does not exist."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _holder(path: Path) -> dict | None:
    """The record in a lock or owner file; None when it cannot be read (empty, damaged)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_stale(path: Path) -> bool:
    """Whether a lock or owner file was left by a process that no longer runs on this host, or is
    unreadable and older than UNREADABLE_GRACE_S (a crash between creating and writing it, in
    versions that wrote it in two steps)."""
    holder = _holder(path)
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime > UNREADABLE_GRACE_S
        except FileNotFoundError:
            return True
    return holder.get("host") == socket.gethostname() and not process_alive(holder.get("pid", -1))


@contextlib.contextmanager
def stage_lock(folder: str | Path, stage: str, enabled: bool = True):
    """Hold `<folder>/.lock-<stage>` while a stage writes to a shared store. A second run gets
    LockHeldError (exit code 4) naming the holder; a stale lock is reported and cleared."""
    if not enabled:  # the caller (a sweep's parent process) holds it
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".lock-{stage}"
    for _ in range(2):
        if _create(path, _me()):
            break
        if is_stale(path):
            holder = _holder(path) or {}
            log.warning(
                "clearing a stale %s lock left by process %s (no longer running, or the lock "
                "file is unreadable)",
                stage,
                holder.get("pid", "unknown"),
            )
            path.unlink(missing_ok=True)
            continue
        holder = _holder(path) or {}
        raise LockHeldError(
            f"another {stage} run holds {path} (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, since {holder.get('started_utc', '?')}); wait for it, "
            "or remove the file if that process is gone"
        )
    else:
        raise LockHeldError(f"could not take {path}: it keeps reappearing; another run holds it")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def claim(folder: Path) -> None:
    """Mark a work folder as this process's (replacing a stale owner's mark)."""
    path = Path(folder) / OWNER
    path.unlink(missing_ok=True)
    _create(path, _me())


def release(folder: Path) -> None:
    (Path(folder) / OWNER).unlink(missing_ok=True)


def owned_by_this_process(folder: Path) -> bool:
    """Whether this process marked the folder as its own (claim)."""
    holder = _holder(Path(folder) / OWNER) or {}
    return holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()


def owned_by_live_process(folder: Path) -> bool:
    """Whether a live process (not this one) is working in the folder."""
    path = Path(folder) / OWNER
    if not path.exists():
        return False
    holder = _holder(path) or {}
    return not is_stale(path) and holder.get("pid") != os.getpid()
