"""The SQL vendor: any database SQLAlchemy reaches (PostgreSQL, Snowflake through
snowflake-sqlalchemy, DuckDB through duckdb-engine, SQLite, ...) queried through mappings.

    # parameters.py
    sql_url = "postgresql://analyst:${PGPASSWORD}@warehouse:5432/research"
    sql_mappings = ["mappings/model_data.toml"]

    # mappings/model_data.toml: the file vendor's mapping vocabulary, plus the query
    source = "warehouse"
    query = \"\"\"SELECT * FROM model_data
                 QUALIFY row_number() OVER (PARTITION BY symbol, quarter_end ORDER BY date DESC) = 1\"\"\"
    [[output]]
    data_type = "ticker_fundamental_data"
    ticker = "symbol"
    date = "quarter_end"
    ...

Each mapping's query runs once (retried with backoff when the connection drops); its result goes
through the mapping's outputs exactly as a file import does (wide or long, dates, units,
announcement dates), every log checked before the first is written, so a bad result writes
nothing and the message names the mapping, the result's row and the column. The query time is
when it runs: a mapping finished within `requery_after_hours` (a hidden mark beside its logs,
never synced) is not run again unless --force, so a rerun after a kill resumes with the mappings
not yet done, and one killed half-way is run again into a later time block.

Credentials: `${NAME}` in sql_url is replaced by the environment variable NAME (or .env); the
URL is never logged with its password. A database that cannot be reached is exit code 3.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zlib
from pathlib import Path

import pandas as pd

from ...errors import BadInputError, VendorUnavailableError
from ..datalog import list_logs
from . import files

log = logging.getLogger(__name__)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _url(text: str):
    """The SQLAlchemy URL with ${NAME} filled in from the environment (never logged)."""
    try:
        from sqlalchemy.engine import make_url
    except ImportError:
        raise VendorUnavailableError(
            'the SQL vendor needs SQLAlchemy: pip install -e ".[sql]" (and the database\'s '
            "driver, e.g. psycopg2-binary, snowflake-sqlalchemy or duckdb-engine)"
        ) from None

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise BadInputError(
                f"parameter 'sql_url' names ${{{name}}}, which is not set in the environment "
                "or .env"
            )
        return os.environ[name]

    try:
        return make_url(_VARIABLE.sub(fill, text))
    except Exception as exc:  # sqlalchemy's ArgumentError for a malformed URL
        raise BadInputError(f"parameter 'sql_url' is not a database URL ({exc})") from None


def connect(url_text: str, retries: int, wait_s: float):
    """An engine whose first connection succeeded, or VendorUnavailableError (exit 3)."""
    from sqlalchemy import create_engine

    url = _url(url_text)
    shown = url.render_as_string(hide_password=True)
    try:
        engine = create_engine(url)
    except ModuleNotFoundError as exc:  # the dialect's driver is not installed
        raise VendorUnavailableError(
            f"database {shown}: SQLAlchemy needs the Python package {exc.name!r} for this URL; "
            f"install it (pip install {exc.name}), or name the driver in sql_url, "
            "e.g. postgresql+psycopg2://..."
        ) from None
    except Exception as exc:  # an unknown dialect
        raise VendorUnavailableError(f"database {shown}: {type(exc).__name__}: {exc}") from None
    last = None
    for attempt in range(retries + 1):
        try:
            with engine.connect():
                return engine
        except Exception as exc:
            last = _short(exc)
            if _refused_credentials(last):
                raise VendorUnavailableError(
                    f"database {shown} refused the credentials ({last}); check the user and "
                    "the password variable in sql_url"
                ) from None
            if attempt < retries:
                time.sleep(wait_s * 2**attempt)
    raise VendorUnavailableError(f"database {shown} cannot be reached ({last})")


def _short(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "orig", exc) or exc).split())[:300]


def _connection_lost(message: str) -> bool:
    return any(
        phrase in message.lower()
        for phrase in (
            "could not connect", "connection refused", "server closed the connection",
            "terminating connection", "connection reset", "connection timed out",
            "connection is closed", "ssl syscall",
        )
    )  # fmt: skip


def _refused_credentials(message: str) -> bool:
    return any(
        phrase in message.lower()
        for phrase in ("password authentication failed", "no password supplied", 'role "')
    )


def _run(engine, sql: str, where: str, retries: int, wait_s: float) -> pd.DataFrame:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    for attempt in range(retries + 1):
        try:
            with engine.connect() as connection:
                try:
                    return pd.read_sql_query(text(sql), connection)
                except pd.errors.DatabaseError as wrapped:  # pandas 3 wraps the driver's error
                    if isinstance(wrapped.__cause__, sa_exc.SQLAlchemyError):
                        raise wrapped.__cause__ from None
                    raise
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated or _connection_lost(_short(exc)):
                if attempt < retries:
                    time.sleep(wait_s * 2**attempt)
                    continue
                raise VendorUnavailableError(
                    f"{where}: the database went away ({_short(exc)})"
                ) from None
            raise BadInputError(f"{where}: the query failed: {_short(exc)}") from None
        except sa_exc.SQLAlchemyError as exc:
            raise BadInputError(f"{where}: the query failed: {_short(exc)}") from None
    raise AssertionError("unreachable")


BLOCK = 1_000_000_000  # µs (about 17 minutes): a query's logs are stamped inside one block
SLOT = 10_000  # µs per mapping inside a block: room for 10,000 logs per query


def query(params, *, force: bool = False) -> dict[str, int]:
    """Run every mapping in params.sql_mappings against params.sql_url and log the results.

    A mapping's logs are stamped at the start of the current block plus a slot fixed by the
    mapping's file name, so a rerun within requery_after_hours can tell it was done (and skips
    it unless `force`) without any state outside the datalog."""
    if not params.sql_url:
        raise BadInputError("parameter 'sql_url' is empty: give the database's SQLAlchemy URL")
    if not params.sql_mappings:
        raise BadInputError("parameter 'sql_mappings' is empty: list the mapping files to run")
    mappings = [(Path(m), files.load_mapping(m, sql=True)) for m in params.sql_mappings]
    engine = connect(params.sql_url, params.bbg_retries, params.bbg_retry_wait_s)
    now_us = time.time_ns() // 1000
    since = now_us - int(params.requery_after_hours * 3600 * 1_000_000)
    stamps = {(n.source, n.timestamp) for n, _ in list_logs(params.datalog_dir)}
    counts = {"written": 0, "already_logged": 0}
    try:
        for path, mapping in mappings:
            slot = _slot(path)
            mine = [
                ts for src, ts in stamps if src == mapping["source"] and ts % BLOCK // SLOT == slot
            ]
            if not force and any(b >= since for b in _finished(params.datalog_dir, slot)):
                log.info(
                    "%s: queried within requery_after_hours; skipped (--force asks again)",
                    path.name,
                )
                counts["already_logged"] += 1
                continue
            where = f"query of mapping {path.name}"
            frame = _run(
                engine, mapping["query"], where, params.bbg_retries, params.bbg_retry_wait_s
            )
            if frame.empty:
                raise BadInputError(
                    f"{where}: the query returned no rows; check it in the database"
                )
            frame = frame.reset_index(drop=True)
            frame.insert(0, files.ROW, range(1, len(frame) + 1))  # the result's 1-based row
            base = now_us - now_us % BLOCK + slot * SLOT
            while any(base <= ts < base + SLOT for ts in mine):  # --force in the same block
                base += BLOCK
            done = files.import_frame(frame, mapping, base, params.datalog_dir, f"{where} (result")
            # finished: a hidden mark (not a log, never synced) lets a rerun skip this mapping;
            # a mapping killed half-way has none and is queried again into a later block
            (Path(params.datalog_dir) / f".sql-finished-{slot}-{base}").touch()
            counts = {k: counts[k] + done[k] for k in counts}
            log.info("%s: %d rows -> %d logs written", path.name, len(frame), done["written"])
    finally:
        engine.dispose()
    return counts


def _finished(datalog_dir, slot: int) -> list[int]:
    """Bases of the finished queries of a mapping slot (from their hidden marks)."""
    return [
        int(p.name.rsplit("-", 1)[1])
        for p in Path(datalog_dir).glob(f".sql-finished-{slot}-*")
        if p.name.rsplit("-", 1)[1].isdigit()
    ]


def _slot(path: Path) -> int:
    return zlib.crc32(path.name.encode()) % (BLOCK // SLOT)
