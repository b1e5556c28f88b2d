"""Checkpoints of the heartbeat loop (O2): a long backtest that is killed resumes where it was.

Every `checkpoint_days` heartbeats the loop's whole state (the ledger's books, pending orders,
stops, the daily log so far, cost alarms) is written atomically to `checkpoint.npz` in the run's
hidden `.partial` folder, with a fingerprint of everything the run depends on: the resolved
parameters, the algorithm file, the dataset version and any starting-holdings file. A rerun with
the same fingerprint continues from the checkpoint and produces the same archive as an
uninterrupted run; a different fingerprint starts over. Only numbers and strings are stored
(numpy without pickle), so a checkpoint file can never run code.

compute_weights must be a function of (view, params), as every bundled strategy is: state kept in
module globals between calls would not survive a restart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from ..infra.storage import atomic_write_bytes

NAME = "checkpoint.npz"


def fingerprint(parts: dict) -> str:
    """A digest of what a run depends on (JSON-able values and file bytes as hex digests)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: str | Path | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Checkpoints:
    """Where a run's checkpoint lives and how often it is written."""

    def __init__(self, folder: Path, fingerprint: str, every_days: int, after_s: float = 0.0):
        self.path = Path(folder) / NAME
        self.fingerprint = fingerprint
        self.every = every_days
        self.after_s = after_s
        self.started = time.monotonic()

    def due(self, done_days: int) -> bool:
        """Every `every` heartbeats, once the run has lasted `after_s` seconds: a run that is done
        in less time than that is cheaper to redo than to checkpoint."""
        return (
            self.every > 0
            and done_days % self.every == 0
            and time.monotonic() - self.started >= self.after_s
        )

    def save(self, state: dict) -> None:
        arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
        meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        meta["fingerprint"] = self.fingerprint
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
        atomic_write_bytes(self.path, buf.getvalue())

    def load(self) -> dict | None:
        """The saved state, or None when there is none or it belongs to other inputs."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["__meta__"]))
                if meta.get("fingerprint") != self.fingerprint:
                    return None
                return {**meta, **{k: data[k] for k in data.files if k != "__meta__"}}
        except (OSError, ValueError, KeyError):
            return None  # unreadable: start over (a checkpoint is only ever an optimisation)

    def discard(self) -> None:
        if self.path.exists():
            os.unlink(self.path)
