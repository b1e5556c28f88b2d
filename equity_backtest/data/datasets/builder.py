"""A build (D5): the logs the current version does not list are read in bounded batches,
merged with the previous version's tables so that the latest query wins, written to a hidden
folder, renamed into place, and only then made current."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
from tqdm import tqdm

from ... import __version__
from ...errors import BadInputError
from ...infra import faults
from ...infra.ahead import in_order
from ...infra.locks import process_alive
from ...infra.storage import atomic_write_text, fsync_dir, link_or_copy, sha256_file
from .. import calendars, fundamentals_checks, quality, quality_parts
from ..datalog import LogName, list_logs, parse_log, parse_many, read_log
from ..vocabulary import LOG_TYPES, TABLES
from . import year_parts
from .fold import _fold_in, _Stored
from .resolve import _concat, _reorders_history, _resolve
from .versions import FORMAT, Columns, _empty, current_version, read_manifest

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BuildResult:
    version: str | None
    new_logs: int
    skipped_logs: list[str]
    rows: dict[str, int]
    up_to_date: bool = False
    quality: dict | None = None


def _log_rows(names: list[LogName], frame: pd.DataFrame, owner: np.ndarray) -> pd.DataFrame:
    """Validated rows of logs of one type -> rows of its table, tagged with source and log
    timestamp; `owner` says which of `names` each row came from. The result is what reading the
    logs one at a time and concatenating gives, row for row."""
    table = LOG_TYPES[names[0].data_type].table
    labels = np.array([n.label for n in names], dtype=object)
    if table in ("market", "fundamentals", "corporate_actions"):
        frame.insert(0, "ticker", labels[owner])
    if table == "fundamentals":
        ids = ["ticker", "period_end", "announcement_date"]
        metrics = [c for c in frame.columns if c not in ids]
        # a melt of one log at a time: log by log, each log metric by metric, its rows in order
        # (melt's row j x n + i is row i of metric j), the rows without a value left out
        n, m = len(frame), len(metrics)
        order = np.lexsort((np.tile(np.arange(n), m), np.repeat(np.arange(m), n), np.tile(owner, m)))  # fmt: skip
        value = frame[metrics].to_numpy(dtype=float).ravel(order="F")[order]
        at = order[~np.isnan(value)]
        row = at % n
        melted = {c: frame[c].array.take(row) for c in ids}
        # the metric's name dictionary-encoded, as the table stores it (resolving orders codes)
        melted |= {"metric": _encoded(metrics, at // n), "value": value[~np.isnan(value)]}
        frame, owner = pd.DataFrame(melted, copy=False), owner[row]
    if table == "corporate_actions":
        # two dividends on one ex-date (a regular and a special) are both paid: one summed row
        frame = (
            frame.assign(_log=owner)
            .groupby(["_log", "ticker", "date", "action"], sort=False, as_index=False)["value"]
            .sum(min_count=1)
        )
        owner = frame.pop("_log").to_numpy()
    if table == "metadata":
        frame = frame.astype(str)
    frame.insert(0, "source", _encoded([n.source for n in names], owner))
    if table in ("market", "fundamentals", "corporate_actions"):  # each row's log's label
        frame["ticker"] = _encoded([n.label for n in names], owner)
    frame["log_ts"] = np.array([n.timestamp for n in names], dtype=np.int64)[owner]
    # one array per column, so the builder frees each column of a batch once it is joined
    return pd.DataFrame({c: frame[c].copy() for c in frame.columns}, copy=False)


def _encoded(labels: list[str], of_row: np.ndarray) -> pd.Categorical:
    """labels' text per row, dictionary-encoded (sorted categories): a batch of a million rows
    names a few thousand tickers, so the rows hold small codes instead of object pointers.
    `of_row` holds, per row, an index into `labels`."""
    categories, inverse = np.unique(np.array(labels, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(inverse[of_row], categories=categories.tolist())


_BUILDER = f"equity_backtest {__version__}"
_BATCH_BYTES = 64 << 20  # logs of one type read together: bounded, so memory stays flat
_BATCHES_AHEAD = 1  # batches parsed on the thread while the next are read


def _read_logs(new: list[tuple[LogName, Path]], skip_bad_logs: bool, progress: bool):
    """Yield (table, rows, [(path, sha256) of the logs read], [(path, error) of bad logs]) for
    the new logs. Logs of one type and header are read in batches (datalog.parse_many); a batch
    it does not take, or a log that cannot be read, is read alone so a bad one is named."""

    def alone(name: LogName, path: Path, data: bytes | None):
        try:
            if data is None:
                frame = read_log(path, name)
                digest = sha256_file(path)
            else:
                frame = parse_log(data, name, f"datalog file {path.name}")
                digest = hashlib.sha256(data).hexdigest()
        except BadInputError as exc:
            if not skip_bad_logs:
                raise
            return None, None, [], [(path, exc)]
        rows = _log_rows([name], frame, np.zeros(len(frame), dtype=np.int64))
        return LOG_TYPES[name.data_type].table, rows, [(path, digest)], []

    def flush(batch: list[tuple[LogName, Path, bytes]]) -> list:
        parsed = parse_many([(n, d) for n, _, d in batch]) if len(batch) > 1 else None
        if parsed is None:
            return [alone(name, path, data) for name, path, data in batch]
        frame, owner = parsed
        rows = _log_rows([n for n, _, _ in batch], frame, owner)
        digests = [(p, hashlib.sha256(d).hexdigest()) for _, p, d in batch]
        return [(LOG_TYPES[batch[0][0].data_type].table, rows, digests, [])]

    def unread(name: LogName, path: Path) -> list:
        return [alone(name, path, None)]

    def tasks():  # (the logs are read here, in the caller's thread; each batch parsed ahead)
        batches: dict[tuple[str, bytes], list] = {}
        sizes: dict[tuple[str, bytes], int] = {}
        with tqdm(total=len(new), desc="reading datalog", unit="log", disable=not progress,
                  leave=False) as bar:  # fmt: skip
            for name, path in new:
                try:
                    data = path.read_bytes()
                except OSError:
                    yield functools.partial(unread, name, path)
                    bar.update()
                    continue
                key = (name.data_type, data[: data.find(b"\n") + 1])
                batches.setdefault(key, []).append((name, path, data))
                sizes[key] = sizes.get(key, 0) + len(data)
                bar.update()
                if sizes[key] >= _BATCH_BYTES:
                    del sizes[key]
                    yield functools.partial(flush, batches.pop(key))
        for key in list(batches):
            yield functools.partial(flush, batches.pop(key))

    # a batch is parsed on a thread while the next logs are read (Arrow's CSV reader and the
    # file reads both run without the GIL); the results come out in the order they went in
    for results in in_order(tasks(), _BATCHES_AHEAD):
        yield from results


def build(
    datalog_dir: str | Path,
    datasets_dir: str | Path,
    *,
    skip_bad_logs: bool = False,
    full: bool = False,
    progress: bool = False,
    calendar: str = "XNYS",
) -> BuildResult:
    """Fold the logs not yet in the current version into a new version and switch to it.

    full=True ignores the current version and rebuilds from every log (the bootstrap path).
    `calendar`: the exchange the quality report checks a source's days against where its metadata
    names none.
    A bad log stops the build (BadInputError naming file, row, field) unless skip_bad_logs.
    """
    calendars.checked(calendar)
    datasets_dir = Path(datasets_dir)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    _clear_abandoned_builds(datasets_dir)
    base = None if full else current_version(datasets_dir)
    prev_logs: dict[str, str] = {}
    base_manifest = None
    if base:
        base_manifest = read_manifest(datasets_dir, base)
        prev_logs = {e["file"]: e["sha256"] for e in base_manifest["logs"]}
        if base_manifest.get("format", 1) != FORMAT:  # (older versions stay as they are)
            log.info("dataset %s is in an older format: building the next from every log", base)
            base, base_manifest, prev_logs = None, None, {}
    with year_parts.BaseDigests(
        base and datasets_dir / base, base_manifest["tables"] if base_manifest else {}
    ) as digests:  # (the base version's files hashed on a thread from now on)
        misnamed: list = []
        new = list_logs(datalog_dir, bad=misnamed, known=prev_logs)  # (those not yet read)
        if misnamed and not skip_bad_logs:
            raise misnamed[0][1]
        if base and not new:
            return BuildResult(base, 0, [], {}, up_to_date=True)
        if not new and not prev_logs:
            raise BadInputError(
                f"the datalog {datalog_dir} holds no logfiles; run 01_query_vendor.py first"
            )
        return _new_version(
            datalog_dir, datasets_dir, new, misnamed, prev_logs, base, base_manifest, digests,
            skip_bad_logs, progress, calendar,
        )  # fmt: skip


def _new_version(
    datalog_dir: str | Path,
    datasets_dir: Path,
    new: list,
    misnamed: list,
    prev_logs: dict[str, str],
    base: str | None,
    base_manifest: dict | None,
    digests: year_parts.BaseDigests,
    skip_bad_logs: bool,
    progress: bool,
    calendar: str,
) -> BuildResult:
    """build()'s work once the logs to read are known: read them, fold them into the base
    version's tables (none from scratch) and write the next version beside it, then switch."""
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}  # new rows, per table
    # (from scratch, a partitioned table's rows are cut by year as they are read)
    cut = {} if base else {t: year_parts.ByYear(t) for t in TABLES if TABLES[t].partition}
    previous: dict[str, _Stored] = {}
    if base:
        previous = {t: _Stored(datasets_dir / base, t) for t in TABLES if not TABLES[t].partition}
    skipped, used = [p.name for p, _ in misnamed], dict(prev_logs)
    for _, exc in misnamed:
        log.warning("skipped bad log: %s", exc)
    read = 0
    for table, frame, log_digests, bad in _read_logs(new, skip_bad_logs, progress):
        for path, exc in bad:
            log.warning("skipped bad log: %s", exc)
            skipped.append(path.name)
        if table in cut:
            cut[table].add(frame)
        elif table is not None:
            parts[table].append(frame)
        used.update((path.name, digest) for path, digest in log_digests)
        read += len(log_digests)

    if (
        base
        and parts["fundamentals"]
        and _reorders_history([previous["fundamentals"].frame(), *parts["fundamentals"]])
    ):
        log.info("new fundamentals land before versions already compacted: rebuilding in full")
        return build(
            datalog_dir,
            datasets_dir,
            skip_bad_logs=skip_bad_logs,
            full=True,
            progress=progress,
            calendar=calendar,
        )
    tables, kept, years = {}, {}, {}
    same_builder = base and base_manifest["builder"] == _BUILDER
    for t in TABLES:
        frames, parts[t] = [f for f in parts[t] if len(f)], []  # (each part freed once used)
        if TABLES[t].partition and base:  # new rows folded into the years they fall in only
            years[t] = year_parts.fold(t, digests, frames, same_builder)
            tables[t] = None  # (read by column from the new version once written)
            continue
        if TABLES[t].partition:  # from scratch: cut by year as read, resolved as written
            years[t], tables[t] = cut[t].parts(), None
            continue
        old = previous.pop(t, None)
        if old is not None and not frames and same_builder and old.exists:
            kept[t] = old  # no new rows: the previous file is the table (the report reads
            # the fundamentals' summary kept beside it, not the table)
            tables[t] = None if t == "fundamentals" else old.frame()
            continue
        folded = None
        if old is not None and len(old) and frames:
            folded = _fold_in(t, old, pd.concat(frames, ignore_index=True))
        if folded is None:
            frames = [
                f
                for f in [None if old is None else old.frame(), *frames]
                if f is not None and len(f)
            ]
            folded = _resolve(t, _concat(frames)) if frames else None  # (parts freed as joined)
        tables[t] = folded if folded is not None else _empty(t)
        del old, folded

    version = _next_version(datasets_dir)
    tmp = datasets_dir / f".{version}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    manifest = {
        "format": FORMAT,
        "version": version,
        "previous_version": base,
        "builder": _BUILDER,
        "logs": [{"file": f, "sha256": used[f]} for f in sorted(used)],
        "new_logs": read,
        "skipped_logs": skipped,
    }
    arrow = {}  # what is written: an Arrow table; (year, frame) parts; None (kept: shared)
    for t, frame in tables.items():
        kind = years.get(t) if t in years else None if t in kept else frame
        arrow[t] = pa.Table.from_pandas(kind, preserve_index=False) if isinstance(kind, pd.DataFrame) else kind  # fmt: skip
    rows = {t: len(frame) for t, frame in tables.items() if frame is not None}
    rows.update({t: base_manifest["tables"][t]["rows"] for t in kept})
    shared = base_manifest["tables"] if base else {}
    # (the year parts' market checks are made as each part is written)
    manifest["tables"], market = _write_tables(arrow, rows, tmp, digests, shared)
    del arrow
    for t in years:  # the whole table is never needed: the report reads a few of its columns
        tables[t] = Columns(tmp, t)
    fundamentals = _fundamentals_checks(
        tmp, tables["fundamentals"], base and datasets_dir / base, kept.get("fundamentals")
    )
    memo = _memo(manifest["tables"], market, digests.base)
    quality_report = quality.report(
        tables, manifest, calendar, {s: list(p.values()) for s, p in market.items()}, fundamentals,
        memo,
    )  # fmt: skip
    memo.save(tmp)
    restated = {
        s["source"]: s["fundamentals_vintage"]
        for s in quality_report["sources"]
        if "fundamentals_vintage" in s
    }
    if restated:  # (only then: other datasets' manifests keep their bytes)
        manifest["fundamentals_vintage"] = restated
    digests.verify()  # (every shared file is the base version's as its manifest says)
    atomic_write_text(tmp / "manifest.json", manifest_text(manifest))
    atomic_write_text(
        tmp / "quality_report.json", json.dumps(quality_report, indent=1, sort_keys=True) + "\n"
    )
    atomic_write_text(tmp / "quality_report.md", quality.markdown(quality_report))
    faults.point("write")
    os.replace(tmp, datasets_dir / version)
    fsync_dir(datasets_dir)
    faults.point("write")  # the version is in place, CURRENT not yet switched
    atomic_write_text(datasets_dir / "CURRENT", version + "\n")
    log.info(
        "dataset %s built from %d new logs (%d skipped)",
        version,
        read,
        len(skipped),
    )
    rows = {t: info["rows"] for t, info in manifest["tables"].items()}
    return BuildResult(version, read, skipped, rows, quality=quality_report)


def manifest_text(manifest: dict) -> str:
    """json.dumps(manifest, indent=1, sort_keys=True), with the list of logs (an entry per
    logfile: tens of thousands) laid out here: json's indenting encoder is pure Python, and took
    0.4 s over 30,000 of them (0.1 s here). The same text to the byte (tests compare)."""
    logs = manifest["logs"]
    marker = f"logs-{uuid.uuid4().hex}"
    text = json.dumps({**manifest, "logs": marker}, indent=1, sort_keys=True)
    if not logs or any(e.keys() != {"file", "sha256"} for e in logs) or text.count(marker) != 1:
        return json.dumps(manifest, indent=1, sort_keys=True)
    dumps = json.dumps
    entries = ",\n".join(
        f'  {{\n   "file": {dumps(e["file"])},\n   "sha256": {dumps(e["sha256"])}\n  }}'
        for e in logs
    )
    return text.replace(f'"{marker}"', f"[\n{entries}\n ]")


def _fundamentals_checks(
    folder: Path, table: pd.DataFrame | None, base: Path | None, stored: _Stored | None
) -> dict:
    """The fundamentals' summaries by source (data/fundamentals_checks), kept in the new
    version's folder: the base version's, shared, where the table is the base's (`table`
    None: not read); else made from the table (read from `stored` if the base kept none)."""
    target = folder / "fundamentals.checks"
    if table is None:
        summaries = fundamentals_checks.load(base / "fundamentals.checks")
        if summaries is not None:
            year_parts.share_tree(base / "fundamentals.checks", target)
            return summaries
        table = stored.frame()
    summaries = fundamentals_checks.by_source(table)
    fundamentals_checks.save(summaries, target)
    return summaries


def _write_tables(
    tables: dict, rows: dict[str, int], folder: Path, digests: year_parts.BaseDigests, shared: dict
) -> tuple[dict, dict]:
    """Write each table as folder/<table>.feather (an Arrow table), a partitioned one as
    folder/<table>/<year>.feather from its (year, frame) parts, each with its market checks'
    summary beside it. A table or part given as None is the base version's file (kept: the
    bytes the builder wrote from the same rows), shared. The manifest's entries (row counts and
    SHA-256, per part where partitioned) and, per source, the parts' summaries by year."""
    info, summaries = {}, {}
    for t, table in tables.items():
        if not TABLES[t].partition:
            info[t] = {"rows": rows[t], **_written(folder, f"{t}.feather", table, digests)}
            continue
        known = shared.get(t, {}).get("parts", {})
        info[t], checks = _write_parts(table, folder, t, digests, known)
        for source, found in checks.items():
            summaries.setdefault(source, {}).update(found)
    return info, summaries


def _memo(entries: dict, market: dict[str, dict], base: Path | None) -> quality_parts.Memo:
    """The quality report's memo: each source's market parts by their SHA-256, with those of
    the tables their results read, so the base version's results are taken where all are the
    same."""
    parts = entries["market"]["parts"]
    made_from = {t: entries[t]["sha256"] for t in ("constituents", "fundamentals")}
    return quality_parts.Memo(
        {s: [parts[y]["sha256"] for y in by_year] for s, by_year in market.items()},
        {"builder": _BUILDER, **made_from},
        base,
    )


def _write_parts(parts, folder: Path, table: str, digests: year_parts.BaseDigests, known: dict):
    """Write a partitioned table's (year, frame) parts, two at a time (compression, hashing and
    most of the checks' numpy work run without the GIL; never more than two wait), taken in year
    order: its manifest entry and, by source, the parts' summaries by year."""
    (folder / table).mkdir()
    entry, summaries = {"rows": 0, "parts": {}}, {}

    def take(future) -> None:
        year, part, checks = future.result()
        entry["parts"][year] = part
        entry["rows"] += part["rows"]
        for source, summary in checks.items():
            summaries.setdefault(source, {})[year] = summary

    with ThreadPoolExecutor(2, thread_name_prefix="year-parts") as pool:
        pending: deque = deque()
        for year, frame in parts.items() if isinstance(parts, dict) else parts:
            if len(pending) == 2:
                take(pending.popleft())
            pending.append(pool.submit(_part, folder, table, year, frame, digests, known.get(year)))
            del frame
        while pending:
            take(pending.popleft())
    return entry, summaries


def _part(
    folder: Path, table: str, year: str, frame, digests: year_parts.BaseDigests, known: dict | None
):
    """Write one year part (or share the base version's where `frame` is None) and its market
    checks: (year, its manifest entry, its checks' summaries by source)."""
    arrow = None if frame is None else pa.Table.from_pandas(frame, preserve_index=False)
    part = f"{table}/{year}.feather"
    entry = _written(folder, part, arrow, digests)
    entry = {"rows": known["rows"] if frame is None else len(frame), **entry}
    del arrow
    kept = digests.base / part if frame is None else None
    return year, entry, year_parts.checked_part(folder / part, frame, kept)


def _written(
    folder: Path, name: str, table: pa.Table | None, digests: year_parts.BaseDigests
) -> dict:
    """Write one file of the new version, or share the base version's where `table` is None:
    its SHA-256 (a shared file's as the base version's manifest names it: the build checks
    every shared file's bytes before the version is switched, refusing a damaged previous
    version with the way out)."""
    path = folder / name
    faults.point("write")
    if table is not None:
        feather.write_feather(table, path, compression="zstd")
        return {"sha256": sha256_file(path)}
    link_or_copy(digests.base / name, path)
    return {"sha256": digests.shared(name)}


def _clear_abandoned_builds(datasets_dir: Path) -> None:
    """Remove `.vNNNNNN.tmp-PID` folders whose builder process is gone (killed mid-build)."""
    for tmp in datasets_dir.glob(".v*.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        if tmp.is_dir() and not (pid.isdigit() and process_alive(int(pid))):
            log.info("removing %s, left by a killed build", tmp.name)
            shutil.rmtree(tmp, ignore_errors=True)


def _next_version(datasets_dir: Path) -> str:
    numbers = [
        int(p.name[1:])
        for p in datasets_dir.iterdir()
        if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit()
    ]
    return f"v{max(numbers, default=0) + 1:06d}"
