"""WRDS vendor (D3, D9+): CRSP and Compustat from WRDS's PostgreSQL server, through SQLAlchemy.

What is asked (tables and columns per CRSP format in QUERIES; docs/pipeline.md lists them):
  - the index's membership spells (CRSP's S&P 500 list), logged as constituent lists on every
    month end and on every day the membership changes, one constituent_list log per day;
  - names, tickers, exchange and industry of every member ever, one metadata_array log: the
    identifier is the PERMNO, the ticker is metadata (with its history);
  - per PERMNO, in chunks of PERMNOs and years: the daily (or monthly) stock file as raw prices
    (CRSP's negative bid/ask-average prices made positive, and flagged), volume and market cap;
    cash dividends and splits; the delisting value (from the delisting return, else the
    delisting price); Compustat quarterly fundamentals linked through the CCM link table, with
    `rdq` as the announcement date (left blank where Compustat has none: the panel then applies
    fundamental_lag_days).

Requests are retried with backoff, and a rerun resumes: a PERMNO whose prices are logged within
`requery_after_hours` is not asked again unless `force` (its actions and fundamentals are logged
before its prices, so "prices logged" means all three are).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...config import Parameters
from ...errors import BadInputError, VendorUnavailableError
from .querylog import Datalog, chunks, last_day, month_ends
from .wrds_distributions import distribution_actions
from .wrds_metadata import GICS_SECTORS, metadata  # noqa: F401 (GICS_SECTORS: re-exported)
from .wrds_sql import (
    FUNDAMENTALS,
    FUNDAMENTALS_PIT,
    MERGED_TABLES,
    PIT_TABLE,
    QUERIES,
)

log = logging.getLogger(__name__)

SOURCE = "wrds"
FORMATS = ("ciz", "legacy")
LEGACY_LAST_DAY = dt.date(2024, 12, 31)  # CRSP's last update of the SIZ files


def _engine(params: Parameters, user: str):
    """A SQLAlchemy engine on WRDS's PostgreSQL server, as WRDS documents the connection (host,
    port 9737, database wrds, sslmode require, your user name). No password is passed: libpq
    reads it from PGPASSWORD or ~/.pgpass, and never prompts."""
    import importlib.util

    try:
        import sqlalchemy
    except ImportError:
        raise VendorUnavailableError(
            "source 'wrds' needs SQLAlchemy and a PostgreSQL driver: pip install -e \".[wrds]\""
        ) from None
    driver = next(
        (d for d, module in (("psycopg2", "psycopg2"), ("psycopg", "psycopg"))
         if importlib.util.find_spec(module)),
        None,
    )  # fmt: skip
    if driver is None:
        raise VendorUnavailableError(
            "source 'wrds' needs a PostgreSQL driver: pip install -e \".[wrds]\" (psycopg2-binary)"
        )
    url = sqlalchemy.engine.URL.create(
        f"postgresql+{driver}", username=user, host=params.wrds_host, port=params.wrds_port,
        database=params.wrds_dbname,
    )  # fmt: skip
    connect_args = {"sslmode": params.wrds_sslmode, "connect_timeout": 20}
    return sqlalchemy.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _credentials(params: Parameters) -> tuple[str, str]:
    user = params.wrds_username or os.environ.get("WRDS_USERNAME", "")
    if not user:
        raise BadInputError(
            "source 'wrds' needs a WRDS user name: set WRDS_USERNAME in the environment or .env "
            "(or wrds_username in parameters.py); the password comes from ~/.pgpass or PGPASSWORD"
        )
    return user, os.environ.get("PGPASSWORD", "")  # (libpq reads it; kept for the message)


def _short(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]


def _refused(message: str) -> bool:
    text = message.lower()
    return any(
        s in text
        for s in ("password authentication failed", "no password supplied", 'role "', "pg_hba")
    )


class Wrds:
    """One connection to WRDS's PostgreSQL server through SQLAlchemy (not the wrds package, whose
    every release caps pandas below 2.3 and which prompts for a password when a connection fails:
    a batch job must not hang on a prompt). Queries are retried with backoff and reconnection; a
    refused login or an unreachable server is one message and exit 3."""

    def __init__(self, params: Parameters):
        user, _ = _credentials(params)
        self.where = f"{user}@{params.wrds_host}:{params.wrds_port}/{params.wrds_dbname}"
        self.retries, self.wait_s = params.bbg_retries, params.bbg_retry_wait_s
        self.requests = 0
        self.engine = _engine(params, user)
        self.connection = None
        last = ""
        for attempt in range(self.retries + 1):
            try:
                from sqlalchemy import text

                self.connection = self.engine.connect()
                self.connection.execute(text("SELECT 1"))
                return
            except Exception as exc:
                last = _short(exc)
                if _refused(last):
                    raise VendorUnavailableError(
                        f"WRDS ({self.where}) refused the credentials ({last}); check "
                        "WRDS_USERNAME and the password in ~/.pgpass or PGPASSWORD"
                    ) from None
                if attempt < self.retries:
                    time.sleep(self.wait_s * 2**attempt)
        raise VendorUnavailableError(
            f"WRDS ({self.where}) cannot be reached ({last}). Nothing was asked; run 01 again "
            "later: what is already logged is kept and not asked again."
        )

    def ask(self, what: str, sql: str, **values) -> pd.DataFrame:
        """One query with retry; a lost connection is reopened, a bad query is exit 2."""
        from sqlalchemy import exc as sa_exc

        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                frame = pd.read_sql_query(
                    sql, self.connection, params=values, dtype_backend="numpy_nullable"
                )
                return frame.reset_index(drop=True)
            except (sa_exc.DBAPIError, pd.errors.DatabaseError) as raised:
                # pandas 3 wraps the driver's error in its own DatabaseError: judge the cause
                exc = raised.__cause__ if isinstance(raised, pd.errors.DatabaseError) else raised
                if not isinstance(exc, sa_exc.DBAPIError):
                    raise
                lost = exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError)
                if not lost:
                    raise BadInputError(
                        f"WRDS query for {what} failed: {_short(exc)}. Check the table names for "
                        "wrds_format (ciz or legacy) and your subscription"
                    ) from None
                if attempt == self.retries:
                    raise VendorUnavailableError(
                        f"WRDS ({self.where}) went away while asking for {what} "
                        f"({_short(exc)}). Rerun 01 later: what is logged is kept and not "
                        "asked again."
                    ) from None
                wait = self.wait_s * 2**attempt
                log.warning("%s failed (%s); retry %d in %.1f s", what, _short(exc), attempt, wait)
                time.sleep(wait)
                self._reconnect()
        raise AssertionError("unreachable")

    def can_read(self, table: str) -> bool:
        """Whether the table exists and this account may read it."""
        frame = self.ask(
            f"access to {table}",
            "SELECT CASE WHEN to_regclass(%(t)s) IS NULL THEN false "
            "ELSE has_table_privilege(%(t)s, 'SELECT') END AS ok",
            t=table,
        )
        return bool(frame["ok"].iloc[0])

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):
            self.connection = self.engine.connect()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(Exception):
            self.engine.dispose()


def _without_what_is_not_granted(db: Wrds, params: Parameters) -> Parameters:
    """The settings to ask with: without access to CRSP/Compustat Merged or Compustat, no
    fundamentals and sectors from SIC codes, said once, and the rest is asked as usual."""
    wants = params.wrds_fundamental_fields or params.wrds_sector == "gics"
    tables = MERGED_TABLES + ((PIT_TABLE,) if params.wrds_fundamentals == "snapshot" else ())
    missing = [t for t in tables if wants and not db.can_read(t)]
    if not missing:
        return params
    log.warning(
        "this WRDS account cannot read %s (CRSP/Compustat Merged and Compustat are separate "
        "subscriptions): no fundamentals are logged and sectors come from SIC codes; prices, "
        "members and corporate actions are asked as usual",
        ", ".join(missing),
    )
    return params.replace(wrds_fundamental_fields={}, wrds_year_to_date=[], wrds_sector="sic")


def query(
    params: Parameters, *, force: bool = False, progress: bool = False, today: dt.date | None = None
) -> dict[str, int]:
    """Ask WRDS for everything parameters.py names and log it; returns counts."""
    if params.wrds_format not in FORMATS:
        raise BadInputError(f"parameter 'wrds_format' must be one of {FORMATS}")
    sql = QUERIES[params.wrds_format]
    db = Wrds(params)  # fails before anything is written when WRDS does not answer
    try:
        store = Datalog(params.datalog_dir, params.requery_after_hours, force, SOURCE)
        end = last_day(params.query_end, today)
        start = params.query_start
        if params.wrds_format == "legacy" and end > LEGACY_LAST_DAY:
            log.warning(
                "CRSP's legacy (SIZ) files end on %s (CRSP retired the format): nothing after it "
                'comes from them; set wrds_format = "ciz" for later data',
                LEGACY_LAST_DAY,
            )
        params = _without_what_is_not_granted(db, params)
        window = {"start": start, "end": end}
        spells = db.ask("index membership", sql["members"], **window)
        universe = _log_members(store, spells, params.index, start, end)
        permnos = [int(p) for p in universe]
        log.info("universe: %d PERMNOs ever in %s", len(universe), params.index)
        if not store.has("metadata_array", "universe"):
            store.write("metadata_array", "universe", metadata(db, sql, params, permnos))
        todo = [p for p in permnos if not store.has("ticker_market_data", str(p))]
        store.counts["skipped"] += len(permnos) - len(todo)
        bar = tqdm(total=len(todo), desc="CRSP/Compustat", unit="permno", disable=not progress)
        for group in chunks(todo, params.wrds_chunk_permnos):
            _query_group(db, sql, params, store, group, start, end)
            bar.update(len(group))
        bar.close()
    finally:
        db.close()
    log.info(
        "wrds: %d queries, %d logfiles written, %d already current",
        db.requests,
        store.counts["written"],
        store.counts["skipped"],
    )
    return {"written": store.counts["written"], "already_logged": store.counts["skipped"]}


def _log_members(store: Datalog, spells: pd.DataFrame, index: str, start, end) -> list[str]:
    """Membership spells -> constituent lists on every month end and every change day."""
    if spells.empty:
        raise BadInputError(
            f"WRDS returned no index members between {start} and {end}; check wrds_format and "
            "your CRSP subscription (crsp.dsp500list_v2 or crsp.dsp500list)"
        )
    first = pd.to_datetime(spells["spell_start"]).dt.normalize()
    last = pd.to_datetime(spells["spell_end"]).dt.normalize().fillna(pd.Timestamp(end))
    permno = spells["permno"].astype("int64").astype(str).to_numpy()
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    changes = pd.concat([first, last + pd.Timedelta(days=1)])
    days = sorted(
        {pd.Timestamp(d) for d in month_ends(start, end)}
        | {lo}
        | set(changes[(changes >= lo) & (changes <= hi)])
    )
    for day in days:
        label = f"{day:%Y%m%d}_{index}"
        inside = ((first <= day) & (last >= day)).to_numpy()
        if store.has("constituent_list", label) or not inside.any():
            store.counts["skipped"] += store.has("constituent_list", label)
            continue
        members = sorted(set(permno[inside]), key=int)
        frame = pd.DataFrame({"date": day, "index": index, "ticker": members, "weight": np.nan})
        store.write("constituent_list", label, frame)
    return sorted(set(permno[((first <= hi) & (last >= lo)).to_numpy()]), key=int)


def _query_group(db, sql, params, store, group, start, end) -> None:
    """Ask everything for a chunk of PERMNOs (the stock file by year chunks) and log per PERMNO."""
    stock = []
    years = list(range(start.year, end.year + 1))
    for span in chunks(years, params.wrds_chunk_years):
        lo, hi = max(start, dt.date(span[0], 1, 1)), min(end, dt.date(span[-1], 12, 31))
        stock.append(
            db.ask(
                f"{params.wrds_frequency} stock file {span[0]}-{span[-1]} of {len(group)} PERMNOs",
                sql[params.wrds_frequency],
                permnos=group,
                start=lo,
                end=hi,
            )
        )
    market = _market(pd.concat(stock, ignore_index=True))
    window = {"permnos": group, "start": start, "end": end}
    actions = _actions(
        distribution_actions(db.ask("distributions", sql["distributions"], **window),
                             params.wrds_format),
        db.ask("delistings", sql["delistings"], **window),
        market,
    )  # fmt: skip
    fund = pd.DataFrame()
    if params.wrds_fundamental_fields:
        metrics = ", ".join(f"({e}) AS {m}" for m, e in params.wrds_fundamental_fields.items())
        early = dt.date(start.year - 1, 1, 1)  # a year earlier: year-to-date items need it
        pit = params.wrds_fundamentals == "snapshot"
        fund = db.ask(
            "Compustat Snapshot fundamentals" if pit else "Compustat fundamentals",
            (FUNDAMENTALS_PIT if pit else FUNDAMENTALS).format(metrics=metrics),
            permnos=group,
            start=early,
            end=end,
        )
        fund = _fundamentals(fund, params, start)
    for p in group:
        label = str(p)
        rows = actions.get(p)
        if rows is not None and len(rows):
            store.write("corporate_actions", label, rows)
        reports = fund[fund["permno"] == p].drop(columns="permno") if len(fund) else fund
        if len(reports):
            store.write("ticker_fundamental_data", label, reports.reset_index(drop=True))
        prices = market.get(p)
        if prices is not None and len(prices):
            store.write("ticker_market_data", label, prices)  # last: "prices logged" = all done


def _floats(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()


def _market(raw: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """CRSP rows -> our raw market frames per PERMNO. A negative price is CRSP's mark of a
    bid/ask average: its absolute value is kept, and close_is_bid_ask says so (1.0)."""
    if raw.empty:
        return {}
    close = _floats(raw["close"])
    flag = raw["price_flag"].astype("string").str.strip().fillna("")
    bid_ask = (close < 0) | (flag == "BA").to_numpy()
    close = np.abs(close)
    close[close == 0] = np.nan  # CRSP's 0: neither a trade nor a quote that day
    cap = _floats(raw["cap_thousands"]) * 1000
    shares = _floats(raw["shares_thousands"]) * 1000
    cap = np.where(np.isnan(cap), close * shares, cap)
    frame = pd.DataFrame(
        {
            "permno": raw["permno"].astype("int64").to_numpy(),
            "date": pd.to_datetime(raw["date"]).to_numpy(),
            "open": np.abs(_floats(raw["open"])),
            "high": np.abs(_floats(raw["high"])),
            "low": np.abs(_floats(raw["low"])),
            "close": close,
            "volume": _floats(raw["volume"]),
            "market_cap": cap,
            "close_is_bid_ask": bid_ask.astype(float),
        }
    )
    unknown = frame["volume"] < 0  # CRSP's -99: the volume is missing (too large to store)
    if unknown.any():
        log.warning(
            "%d rows with CRSP's missing-volume code (a negative volume, such as -99) logged "
            "without a volume: no volume cap applies to fills on those days",
            int(unknown.sum()),
        )
        frame.loc[unknown, "volume"] = np.nan
    frame = frame[np.isfinite(frame["close"])].sort_values(["permno", "date"], kind="stable")
    frame = frame.drop_duplicates(["permno", "date"], keep="last")
    return {
        int(p): g.drop(columns="permno").reset_index(drop=True)
        for p, g in frame.groupby("permno", sort=True)
    }


def _actions(
    rows: list[tuple], delist: pd.DataFrame, market: dict[int, pd.DataFrame]
) -> dict[int, pd.DataFrame]:
    """Distributions (as wrds_distributions gives them) and delistings -> corporate_actions
    frames per PERMNO.

    A delisting is paid the calendar day after the last trading day (the engine applies a
    non-trading date on the next trading day): the last close x (1 + delisting return), else the
    delisting price; with neither, nothing is logged and the panel closes at the last price."""
    rows = list(rows)
    for r in delist.itertuples(index=False):
        permno, last_day = int(r.permno), pd.Timestamp(r.last_day)
        prices = market.get(permno)
        close = None
        if prices is not None:
            before = prices[prices["date"] <= last_day]
            close = float(before["close"].iloc[-1]) if len(before) else None
        value = None
        if pd.notna(r.delisting_return) and close is not None:
            value = close * (1.0 + float(r.delisting_return))
        elif pd.notna(r.delisting_price) and float(r.delisting_price) != 0:
            value = abs(float(r.delisting_price))
        if value is None:
            log.warning(
                "PERMNO %d delisted after %s without a delisting return or price: the engine "
                "will close a holding at its last price",
                permno,
                last_day.date(),
            )
            continue
        rows.append((permno, last_day + pd.Timedelta(days=1), "delisting", max(value, 0.0)))
    frame = pd.DataFrame(rows, columns=["permno", "date", "action", "value"])
    frame = frame.sort_values(["permno", "date", "action"], kind="stable")
    return {
        int(p): g.drop(columns="permno").reset_index(drop=True)
        for p, g in frame.groupby("permno", sort=True)
    }


def _fundamentals(raw: pd.DataFrame, params: Parameters, start: dt.date) -> pd.DataFrame:
    """Compustat rows -> our fundamentals: scaled to units (wrds_fundamental_scale), items that
    Compustat reports year to date turned into the quarter's own figure, periods from start."""
    metrics = list(params.wrds_fundamental_fields)
    if raw.empty:
        return pd.DataFrame(columns=["permno", "period_end", "announcement_date", *metrics])
    frame = pd.DataFrame(
        {
            "permno": raw["permno"].astype("int64"),
            "period_end": pd.to_datetime(raw["period_end"]),
            "announcement_date": pd.to_datetime(raw["announcement_date"]),
            "fiscal_year": _floats(raw["fiscal_year"]),
            "fiscal_quarter": _floats(raw["fiscal_quarter"]),
        }
    )
    for m in metrics:
        frame[m] = _floats(raw[m]) * params.wrds_fundamental_scale
    frame = frame.sort_values(["permno", "period_end", "announcement_date"], kind="stable")
    for m in params.wrds_year_to_date:
        if m not in frame:
            continue
        # the previous quarter of the same fiscal year, as first reported before this one
        first = frame.drop_duplicates(["permno", "fiscal_year", "fiscal_quarter"])
        prior = first.assign(fiscal_quarter=first["fiscal_quarter"] + 1)[
            ["permno", "fiscal_year", "fiscal_quarter", m]
        ].rename(columns={m: "_before"})
        merged = frame.merge(prior, on=["permno", "fiscal_year", "fiscal_quarter"], how="left")
        q1 = (merged["fiscal_quarter"] == 1).to_numpy()
        own = merged[m].to_numpy() - merged["_before"].to_numpy()
        frame[m] = np.where(q1, merged[m].to_numpy(), own)
    frame = frame[frame["period_end"] >= pd.Timestamp(start)]
    frame = frame.dropna(how="all", subset=metrics)
    # snapshot versions public on one day (both held before the report): the later one is it
    frame = frame.drop_duplicates(["permno", "period_end", "announcement_date"], keep="last")
    return frame.drop(columns=["fiscal_year", "fiscal_quarter"]).reset_index(drop=True)
