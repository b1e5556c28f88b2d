"""What the querying vendors (Bloomberg, WRDS, Datastream) share: a datalog writer that knows
what is already current (so a rerun resumes), chunking, month ends, and retries with
exponential backoff that end in exit code 3 with the vendor's own message."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pandas as pd

from ...errors import BadInputError, VendorUnavailableError
from ..datalog import LogName, list_logs, write_log

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_retries(
    what: str,
    call: Callable[[], T],
    retries: int,
    wait_s: float,
    give_up: Callable[[Exception], str],
    on_retry: Callable[[], None] | None = None,
) -> T:
    """call(), tried retries + 1 times, waiting wait_s x 2^attempt between tries with a warning
    naming `what`; then VendorUnavailableError(give_up(last error)). A user's mistake
    (BadInputError) and Ctrl-C are never retried."""
    for attempt in range(retries + 1):
        try:
            return call()
        except (BadInputError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the link, the session or the service failed
            if attempt == retries:
                raise VendorUnavailableError(give_up(exc)) from None
            wait = wait_s * 2**attempt
            log.warning("%s failed (%s: %s); retry %d of %d in %.1f s", what,
                        type(exc).__name__, exc, attempt + 1, retries, wait)  # fmt: skip
            time.sleep(wait)
            if on_retry is not None:
                on_retry()
    raise AssertionError("unreachable")


class Retrying:
    """A vendor's connection that counts its requests and retries each (with_retries)."""

    retries: int
    wait_s: float
    requests: int = 0

    def retried(self, what: str, call: Callable[[], T], give_up: Callable[[Exception], str]) -> T:
        self.requests += 1
        return with_retries(what, call, self.retries, self.wait_s, give_up, self._count)

    def _count(self) -> None:
        self.requests += 1


def last_day(query_end: dt.date | None, today: dt.date | None = None) -> dt.date:
    """The last day a query asks for: query_end, never after today (None: today)."""
    today = today or dt.date.today()
    return min(query_end or today, today)


def chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


def month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every calendar month end in [start, end], and `end` itself if it is not one."""
    days = [d.date() for d in pd.date_range(start, end, freq="ME")]
    if not days or days[-1] < end:
        days.append(end)
    return days


class Datalog:
    """Writes this query's logs with increasing timestamps and knows what is already current."""

    def __init__(self, datalog_dir: str | Path, window_hours: float, force: bool, source: str):
        self.dir = datalog_dir
        self.source = source
        self.now_us = time.time_ns() // 1000
        self.last_ts = self.now_us - 1
        since = self.now_us - int(window_hours * 3600 * 1_000_000)
        self.current: dict[tuple[str, str], Path] = {}
        if not force:
            for name, path in list_logs(datalog_dir):
                if name.source == source and name.timestamp >= since:
                    self.current[(name.data_type, name.label)] = path
        self.counts = {"written": 0, "skipped": 0}

    def has(self, data_type: str, label: str) -> bool:
        return (data_type, label) in self.current

    def write(self, data_type: str, label: str, frame: pd.DataFrame) -> None:
        self.last_ts = max(self.last_ts + 1, time.time_ns() // 1000)
        path, _ = write_log(self.dir, LogName(self.last_ts, self.source, data_type, label), frame)
        self.current[(data_type, label)] = path
        self.counts["written"] += 1
