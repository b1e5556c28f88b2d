"""The simulated vendor's query: the market simulated once and every table written as
datalog files, rendered and written on threads in bounded batches (memory stays flat)."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import itertools
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm import tqdm

from ....infra import heap
from ...datalog import LogName, list_logs, render_log, render_logs, write_logs_bytes
from .generator import simulate
from .settings import SOURCE, SimulationSettings
from .tables import _quoted

log = logging.getLogger(__name__)


_RENDER_ROWS = 200_000  # rows of logs rendered together: fast, and memory stays flat
_RENDERERS, _WRITERS = 2, 4  # threads rendering batches of logs and writing files (_LogWriter)
_FILES = 64  # logs a writer writes together (storage.atomic_write_many)


def query_timestamp_base(settings: SimulationSettings) -> int:
    """A fixed 'query time' (the day after the simulated end, UTC) so logs never depend on today."""
    moment = dt.datetime.combine(settings.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000


def query(
    settings: SimulationSettings, datalog_dir, progress: bool = False, clock: dt.date | None = None
) -> dict[str, int]:
    """Simulate the market and write it to the datalog, one logfile per vendor-style query.

    Rerunning with the same settings writes nothing new (identical files are already logged).
    With a clock, only what is known at that day's close and not logged by an earlier clock
    (see as_of). Returns counts of files written and already present.
    """
    with heap.kept():  # (tens of millions of numbers: see heap)
        return _query(settings, datalog_dir, progress, clock)


def logged_clock(datalog_dir) -> dt.date | None:
    """The latest clock a simulated query logged (its logs are stamped the day after it)."""
    stamps = [n.timestamp for n, _ in list_logs(datalog_dir) if n.source == SOURCE]
    if not stamps:
        return None
    moment = dt.datetime.fromtimestamp(max(stamps) // 1_000_000, dt.UTC)
    return moment.date() - dt.timedelta(days=1)


def as_of(market, since: dt.date | None, clock: dt.date) -> None:
    """Keep, in place, what became known in (since, clock]: prices, actions and lists by their
    date, fundamentals by their announcement, companies by their first price, and the market's
    episodes that ended by the clock (all of them, when any is new: a newer list replaces)."""
    lo = pd.Timestamp(since) if since else pd.Timestamp.min
    hi = pd.Timestamp(clock)

    def new(frame, column):
        return frame[(frame[column] > lo) & (frame[column] <= hi)].reset_index(drop=True)

    first = market.prices.groupby("ticker")["date"].min()
    market.prices = new(market.prices, "date")
    market.corporate_actions = new(market.corporate_actions, "date")
    market.constituents = new(market.constituents, "date")
    market.fundamentals = new(market.fundamentals, "announcement_date")
    listed = set(first[(first > lo) & (first <= hi)].index)
    market.metadata = market.metadata[market.metadata["ticker"].isin(listed)].reset_index(drop=True)
    ended = market.regimes[market.regimes["end"] <= hi]
    fresh = (ended["end"] > lo).any()
    market.regimes = ended.reset_index(drop=True) if fresh else ended.iloc[:0]


@functools.lru_cache(maxsize=1)
def cached_market(settings: SimulationSettings):
    """The last market simulated, kept for clocked queries: a live account's days, run in one
    process, simulate it once (as_of copies what it keeps; the cached tables are never changed)."""
    return simulate(settings)


def _query(settings: SimulationSettings, datalog_dir, progress: bool, clock) -> dict[str, int]:
    index = settings.index_name
    base = query_timestamp_base(settings)
    if clock is None:
        market = simulate(settings, progress=progress)
    else:
        clock = min(clock, settings.end)
        market = dataclasses.replace(cached_market(settings))  # (as_of rebinds its tables)
        as_of(market, logged_clock(datalog_dir), clock)
        base = query_timestamp_base(dataclasses.replace(settings, end=clock))
    with _LogWriter(datalog_dir, base, progress) as writer:

        def logs_by(
            data_type: str, frame: pd.DataFrame, key: str, label, drop: bool, quoted: bool
        ) -> None:
            """One log per value of `key` (sorted), each holding that value's rows in their
            order, handed to the writer a few hundred thousand rows at a time (quoted: with
            its numbers quoted to 10 digits there)."""
            codes, values = pd.factorize(frame[key], sort=True, use_na_sentinel=False)
            order = np.argsort(codes, kind="stable")  # (ranks: integers, not millions of text)
            if drop:
                del frame[key]  # (the others stay as they are: nothing copied)
            codes = codes[order]
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else []
            bounds = np.r_[starts, len(codes)].astype(np.int64)
            first = 0
            while first < len(starts):  # logs first..last-1, about _RENDER_ROWS rows together
                last = max(int(np.searchsorted(bounds, bounds[first] + _RENDER_ROWS, "right")) - 1,
                           first + 1)  # fmt: skip
                last = min(last, len(starts))
                labels = [label(values[codes[starts[i]]]) for i in range(first, last)]
                rows = frame.take(order[bounds[first] : bounds[last]])  # (a batch at a time)
                rows.index = pd.RangeIndex(len(rows))
                spans = bounds[first : last + 1] - bounds[first]
                writer.submit(data_type, labels, rows, spans, quoted)
                first = last

        logs_by(
            "constituent_list",
            market.constituents,
            "date",
            lambda d: f"{pd.Timestamp(d):%Y%m%d}_{index}",
            drop=False,
            quoted=False,
        )
        for data_type, label, frame in (
            ("metadata_array", "universe", market.metadata),
            ("market_regimes", index, market.regimes),
        ):
            if clock is None or len(frame):  # (a clocked day with nothing new: no log)
                writer.submit(data_type, [label], frame)
        per_ticker = [
            ("ticker_market_data", market.prices),
            ("ticker_fundamental_data", market.fundamentals),
            ("corporate_actions", market.corporate_actions),
        ]
        del market  # (each table freed once it is sorted for its logs)
        while per_ticker:
            logs_by(*per_ticker.pop(0), "ticker", str, drop=True, quoted=True)
    counts = writer.counts
    log.info(
        "simulated vendor: %d logfiles written, %d already logged",
        counts["written"],
        counts["already_logged"],
    )
    return counts


class _LogWriter:
    """Renders batches of logs (render_logs: checked as 02 reads them) on two threads while the
    caller prepares the next batch, and writes the files on four more: Arrow's kernels, the
    checks' CSV reader and fsync run without the GIL, so both cores keep working while files
    wait for the disk. Logs are numbered in the order they are submitted (base, base + 1, ...),
    so every file's name and bytes are the same whatever order the work finishes in; a failure
    stops the rest and is raised. Memory stays flat: the caller waits while two batches are
    being rendered, or eight groups of rendered files wait for their writers."""

    def __init__(self, datalog_dir, base: int, progress: bool) -> None:
        self.datalog_dir, self.stamps = datalog_dir, itertools.count(base)
        self.counts = {"written": 0, "already_logged": 0}
        self.renderers = ThreadPoolExecutor(_RENDERERS, thread_name_prefix="datalog-render")
        self.writers = ThreadPoolExecutor(_WRITERS, thread_name_prefix="datalog-write")
        self.rendering: collections.deque[Future] = collections.deque()  # batches
        self.writing: collections.deque[Future] = collections.deque()  # groups of files
        self.bar = tqdm(desc="writing datalog", unit="log", disable=not progress, leave=False)

    def submit(
        self, data_type: str, labels: list[str], frame: pd.DataFrame, starts=None, quoted=False
    ) -> None:
        """Logs labelled `labels`, log k holding rows starts[k]:starts[k + 1] of frame (one log
        holding the whole frame without `starts`); quoted: the frame's numbers are quoted to
        10 digits first (_quoted), on the rendering thread."""
        names = [LogName(next(self.stamps), SOURCE, data_type, label) for label in labels]
        self.rendering.append(self.renderers.submit(self._render, names, frame, starts, quoted))
        self._collect(rendering=_RENDERERS, writing=2 * _WRITERS)

    def _render(self, names: list[LogName], frame: pd.DataFrame, starts, quoted) -> list[Future]:
        frame = _quoted(frame) if quoted else frame
        datas = (
            [render_log(names[0], frame)] if starts is None else render_logs(names, frame, starts)
        )
        logs = list(zip(names, datas, strict=True))
        return [self.writers.submit(write_logs_bytes, self.datalog_dir, logs[k : k + _FILES])
                for k in range(0, len(logs), _FILES)]  # fmt: skip

    def _collect(self, rendering: int, writing: int) -> None:
        """Waits until at most `rendering` batches are being rendered and `writing` groups of
        files written (so memory stays flat), counting what was written."""
        while len(self.rendering) > rendering:
            self.writing.extend(self.rendering.popleft().result())
        while len(self.writing) > writing:
            written = self.writing.popleft().result()
            self.counts["written"] += sum(written)
            self.counts["already_logged"] += len(written) - sum(written)
            self.bar.update(len(written))

    def __enter__(self) -> _LogWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self._collect(rendering=0, writing=0)
        finally:
            self.renderers.shutdown(wait=True, cancel_futures=True)
            self.writers.shutdown(wait=True, cancel_futures=True)
            self.bar.close()
