"""Fault injection for the reliability suite (O2): SIGKILL this process at a chosen point.

    EQUITY_BACKTEST_KILL_AT=write:7      killed at the 7th file-write point it passes
    EQUITY_BACKTEST_KILL_AT=heartbeat:300  killed at the start of the 300th trading day
    EQUITY_BACKTEST_KILL_AT=decision:12  killed after the 12th LLM decision is logged

Points: 'write' (before, between and after the steps of every atomic write and dataset build),
'heartbeat' (each day of 03's loop) and 'decision' (each decision logged). The variable is read
at import; unset, a point costs one comparison. The tests kill the numbered scripts here and check
that a rerun gives the same files as an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("EQUITY_BACKTEST_KILL_AT")  # read once: the loop calls point() daily
_passed: dict[str, int] = {}
_counting = threading.Lock()  # (01's simulated vendor writes files on several threads)


def point(kind: str) -> None:
    if _SPEC is None:
        return
    name, _, n = _SPEC.partition(":")
    if name != kind:
        return
    with _counting:
        _passed[kind] = _passed.get(kind, 0) + 1
        if _passed[kind] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
