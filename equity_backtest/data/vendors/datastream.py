"""Datastream vendor (D14): 01 asks LSEG's Datastream Web Service through its own Python package
(DatastreamPy) and logs each answer.

What is asked, all from parameters.py (datatypes in `datastream_fields`):
  - each list's members at every month end: the list mnemonic with the month as MMYY
    ("LS&PCOMP0311" is the S&P 500 of March 2011), a static request of DSCD, one
    constituent_list log per (month end, list). A month's list is taken as its members on the
    month's last day. An empty month after the list's first is an error naming the list and
    the month, never skipped;
  - every member ever is the universe, keyed by its permanent Datastream code (DSCD): a renamed
    company or a changed mnemonic stays one instrument;
  - static metadata for the universe (name, industry, ISIN, mnemonic, currency, base date), one
    metadata_array log; a dead company's NAME carries its delisting date;
  - daily time series of UP, P, PO, PH, PL, VO, MV, NOSH, RI, UDDE and XDDE per instrument
    (reduced to month-end bars after the screens when ds_frequency = "monthly"), screened
    (datastream_screens: holiday and post-death padding removed, splits from UP/P, dividends on
    their ex-dates, Ince and Porter's reversals, low prices, RI's total return compared), one
    ticker_market_data and one corporate_actions log per instrument;
  - Worldscope items per instrument at ds_fundamental_frequency, one ticker_fundamental_data log
    per instrument: each period's figures are public on the date ds_report_date_field gives
    (when set), else ds_report_lag_days after the period ends, and are the latest (restated)
    values, which the manifest and the quality report say.

Credentials come from DSWS_USERNAME and DSWS_PASSWORD (environment or .env); ds_config names an
optional DatastreamPy config file (proxies, certificate). Requests are chunked (instruments x
datatypes), retried with exponential backoff, and a rerun resumes: an instrument already logged
within `requery_after_hours` is not asked again unless `force`. No service, a refused login or no
DatastreamPy is exit 3 with what to do, never a prompt.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...config import Parameters
from ...errors import BadInputError, VendorUnavailableError
from .. import calendars
from ..datalog import read_log
from . import datastream_screens as screens
from .querylog import Datalog, Retrying, chunks, last_day, month_ends

log = logging.getLogger(__name__)

SOURCE = "datastream"
LIST_KEY = "DSCD"  # the permanent code every member is logged under
DATE_COLUMNS = ("ex_date", "report_date")  # datatypes whose values are dates


def _client_class():
    """DataClient, or exit code 3 with what to install."""
    try:
        from DatastreamPy import DataClient
    except ImportError:
        raise VendorUnavailableError(
            "source 'datastream' needs LSEG's DatastreamPy package: "
            "pip install 'equity_backtest[datastream]'"
        ) from None
    from DatastreamPy.DSUserDataObjectBase import DSUserObjectLogFuncs

    # DatastreamPy prints every exception it sees: ours are logged once, with what to do
    DSUserObjectLogFuncs.LogExcepFunc = lambda *a, **k: None
    DSUserObjectLogFuncs.LogErrorFunc = lambda *a, **k: None
    return DataClient


class Service(Retrying):
    """DataClient calls with retry and backoff."""

    def __init__(self, params: Parameters):
        data_client = _client_class()
        user = os.environ.get("DSWS_USERNAME", "")
        password = os.environ.get("DSWS_PASSWORD", "")
        if not (user and password) and not params.ds_config:
            raise VendorUnavailableError(
                "source 'datastream' needs credentials: set DSWS_USERNAME and DSWS_PASSWORD in "
                "the environment or a .env file beside parameters.py (or name a DatastreamPy "
                "config file with ds_config). Nothing was written."
            )
        self.retries, self.wait_s = params.ds_retries, params.ds_retry_wait_s
        self.requests = 0
        try:
            self.client = data_client(params.ds_config or None, user or None, password or None)
        except Exception as exc:
            if type(exc).__name__ == "DSUserObjectFault" or "credentials" in str(exc):
                why = (f"Datastream refused the login ({exc}); check DSWS_USERNAME and "
                       "DSWS_PASSWORD (a Datastream Web Service ID and its password)")  # fmt: skip
            else:
                why = (f"the Datastream Web Service does not answer ({type(exc).__name__}: "
                       f"{exc}); check the network (and a proxy in ds_config), then run 01 "
                       "again")  # fmt: skip
            raise VendorUnavailableError(why + ". Nothing was written.") from None

    def run(self, what: str, call: Callable[[], dict]) -> dict:
        return self.retried(
            what,
            call,
            lambda exc: (
                f"Datastream did not answer {what} after {self.retries + 1} tries "
                f"({type(exc).__name__}: {exc}). Rerun 01 later: what is already logged is kept "
                "and not asked again."
            ),
        )

    def ask(self, instruments: str, fields: list[str], start="", end="", freq="D", kind=1):
        """One GetData through DatastreamPy's request building, login and token renewal; the
        JSON DataResponse itself (its own frame building fails on pandas 3 for a static request
        of several instruments, and picks its shape from the last value it reads)."""
        from DatastreamPy.DS_Requests import DataRequest

        request, _ = self.client.post_user_request(instruments, fields, start, end, freq, kind)
        self.client.Check_Token()  # renews a token within 15 minutes of its expiry
        body = DataRequest().get_Request(request, self.client.token)
        answer = self.client._get_json_Response(self.client.url + "GetData", body)
        if not isinstance(answer, dict) or "DataResponse" not in answer:
            raise RuntimeError((answer or {}).get("Message", "an answer without DataResponse"))
        return answer["DataResponse"]

    def static(self, instruments: str, fields: list[str], day: dt.date | None = None):
        start = f"{day:%Y-%m-%d}" if day else ""
        return self.run(
            f"static {fields} of {instruments[:60]}",
            lambda: self.ask(instruments, fields, start, "", "", 0),
        )

    def series(self, instruments: list[str], fields: list[str], start, end, freq: str):
        return self.run(
            f"{freq} series {fields} of {len(instruments)} instruments",
            lambda: self.ask(
                ",".join(instruments), fields, f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}", freq, 1
            ),  # fmt: skip
        )


_JSON_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def _value(value):
    """A DSWS value: "/Date(ms+0000)/" -> Timestamp, "$$ER..." (an error) -> None."""
    if isinstance(value, str):
        if value.startswith("$$"):
            return None
        match = _JSON_DATE.match(value)
        if match:
            return pd.Timestamp(int(match.group(1)), unit="ms").normalize()
    return value


def long_values(response: dict) -> pd.DataFrame:
    """A DSWS DataResponse -> long rows (date, instrument, field, value). An instrument answered
    with an error (Type 0, "$$ER: ...") gives no rows."""
    dates = [_value(d) for d in response.get("Dates") or []]
    rows: list[tuple] = []
    for item in response.get("DataTypeValues") or []:
        field = str(item.get("DataType"))
        for symbol in item.get("SymbolValues") or []:
            if symbol.get("Type") == 0:
                continue
            values = symbol.get("Value")
            if not isinstance(values, list):
                values = [values]
            for day, value in zip(dates, values, strict=False):
                value = _value(value)
                if value is not None:
                    rows.append((day, str(symbol.get("Symbol")), field, value))
    return pd.DataFrame(rows, columns=["date", "instrument", "field", "value"])


def query(
    params: Parameters, *, force: bool = False, progress: bool = False, today: dt.date | None = None
) -> dict[str, int]:
    """Ask Datastream for everything parameters.py names and log it; returns counts."""
    service = Service(params)  # fails before anything is written when no service answers
    store = Datalog(params.datalog_dir, params.requery_after_hours, force, SOURCE)
    end = last_day(params.query_end, today)
    start = params.query_start
    lists = params.ds_lists or [params.index]
    universe = sorted(_query_members(service, store, lists, start, end, progress))
    log.info("universe: %d instruments ever in %s", len(universe), ", ".join(lists))

    if params.ds_metadata_fields and not store.has("metadata_array", "universe"):
        store.write("metadata_array", "universe", _metadata(service, params, universe))
    names = read_log(store.current[("metadata_array", "universe")]) if (
        "metadata_array", "universe") in store.current else pd.DataFrame()  # fmt: skip
    dead = {
        str(t): day
        for t, n in zip(names.get("ticker", []), names.get("name", []), strict=True)
        if (day := screens.delisted_on(n)) is not None
    }
    sessions = calendars.sessions(calendars.checked(params.exchange_calendar), start, end)
    rules = screens.Rules(
        params.ds_padding_days, params.ds_split_tolerance, params.ds_low_price,
        params.ds_ri_tolerance,
    )  # fmt: skip
    found: dict[str, int] = {}
    todo = [t for t in universe if not store.has("ticker_market_data", t)]
    store.counts["skipped"] += len(universe) - len(todo)
    for group in tqdm(list(chunks(todo, params.ds_chunk_tickers)), desc="market data",
                      unit="chunk", disable=not progress, leave=False):  # fmt: skip
        answers = _series(service, params, group, params.ds_market_fields, start, end, "D")
        for ticker in group:
            if ticker not in answers:
                log.warning("%s: Datastream returned no daily data for it (a code that does not "
                            "resolve, or none in the window); it has none in the datalog", ticker)  # fmt: skip
                continue
            out = screens.screen(answers[ticker], sessions, rules, dead.get(ticker))
            for kind in out.actions["action"]:
                found[kind] = found.get(kind, 0) + 1
            if len(out.actions):  # actions first, so "prices logged" means both
                store.write("corporate_actions", ticker, out.actions)
            market = out.market
            if params.ds_frequency == "monthly":
                market = screens.month_end_bars(market)
            if len(market):
                store.write("ticker_market_data", ticker, market)
    _fundamentals(service, params, store, universe, start, end, progress)
    screened = {k: v for k, v in found.items() if k not in ("split", "dividend", "delisting")}
    if screened:
        log.warning("Datastream screens (counted in the quality report): %s",
                    ", ".join(f"{v} {k}" for k, v in sorted(screened.items())))  # fmt: skip
    log.info("datastream: %d requests, %d logfiles written, %d already current",
             service.requests, store.counts["written"], store.counts["skipped"])  # fmt: skip
    return {"written": store.counts["written"], "already_logged": store.counts["skipped"]}


def _query_members(service, store, lists, start, end, progress) -> set[str]:
    members: set[str] = set()
    listed: set[str] = set()
    asks = [(name, day) for name in lists for day in month_ends(start, end)]
    for name, day in tqdm(asks, desc="lists", unit="list", disable=not progress, leave=False):
        label = f"{day:%Y%m%d}_{name}"
        if store.has("constituent_list", label):
            store.counts["skipped"] += 1
            members.update(read_log(store.current[("constituent_list", label)])["ticker"])
            listed.add(name)
            continue
        mnemonic = f"{name}{day:%m%y}"
        rows = long_values(service.static(f"{mnemonic}|L", [LIST_KEY], day))
        codes = rows.loc[rows["field"] == LIST_KEY, "value"].astype(str).str.strip()
        codes = codes[codes.ne("") & codes.ne("NA") & codes.ne("nan")].drop_duplicates()
        if codes.empty:
            if name in listed:
                raise VendorUnavailableError(
                    f"Datastream gave no members of {mnemonic} (list {name}, {day:%B %Y}) after "
                    "giving earlier months: the list mnemonic may be wrong for that month, or "
                    "the account is not entitled to it; nothing is guessed (rerun to resume, or "
                    "set query_start after that month)"
                )
            continue
        listed.add(name)
        frame = pd.DataFrame({"date": pd.Timestamp(day), "index": name,
                              "ticker": codes.to_numpy(), "weight": np.nan})  # fmt: skip
        store.write("constituent_list", label, frame)
        members.update(frame["ticker"])
    if not members:
        raise BadInputError(
            f"Datastream returned no members for {', '.join(lists)} between {start} and {end}; "
            "check the list mnemonics (e.g. 'LS&PCOMP', 'LFTSE100') in parameters.py (ds_lists)"
        )
    return members


def _series(service, params, group, mapping, start, end, freq) -> dict[str, pd.DataFrame]:
    """Time series of one instrument chunk over datatype chunks -> {instrument: frame with our
    column names}."""
    parts: dict[str, list[pd.DataFrame]] = {}
    reverse = {v.upper(): k for k, v in mapping.items()}
    for fields in chunks(list(mapping.values()), params.ds_chunk_fields):
        rows = long_values(service.series(group, fields, start, end, freq))
        if rows.empty:
            continue
        for code, got in rows.groupby("instrument", sort=False):
            wide = got.pivot_table(index="date", columns="field", values="value",
                                   aggfunc="last", dropna=False)  # fmt: skip
            wide.columns = [reverse.get(str(c).upper(), str(c)) for c in wide.columns]
            wide.index = pd.to_datetime(wide.index)
            parts.setdefault(str(code), []).append(wide)
    out = {}
    for code, frames in parts.items():
        frame = pd.concat(frames, axis=1)
        dated = [c for c in frame.columns if c in DATE_COLUMNS]
        for column in frame.columns:
            if column not in dated:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        if frame.drop(columns=dated).notna().any().any():
            out[code] = frame
    return out


def _fundamentals(service, params, store, universe, start, end, progress) -> None:
    mapping = params.ds_fundamental_fields
    if not mapping:
        return
    asked = dict(mapping)
    if params.ds_report_date_field:
        asked["report_date"] = params.ds_report_date_field
    todo = [t for t in universe if not store.has("ticker_fundamental_data", t)]
    store.counts["skipped"] += len(universe) - len(todo)
    lag = pd.Timedelta(days=params.ds_report_lag_days)
    for group in tqdm(list(chunks(todo, params.ds_chunk_tickers)), desc="fundamentals",
                      unit="chunk", disable=not progress, leave=False):  # fmt: skip
        answers = _series(service, params, group, asked, start, end,
                          params.ds_fundamental_frequency)  # fmt: skip
        for ticker, answer in answers.items():
            # Datastream pads a period's figure until the next one: one row per change
            frame = answer.reindex(columns=list(mapping)).astype(float)
            changed = frame.ne(frame.shift(1)) & frame.notna()
            keep = changed.any(axis=1).to_numpy()
            frame = frame[keep]
            if frame.empty:
                continue
            period_end = pd.Series(pd.to_datetime(frame.index))
            # the report date where it is asked and given (never before the period's end), else
            # the period's end plus the lag
            reported = pd.Series(pd.NaT, index=period_end.index, dtype="datetime64[ns]")
            if "report_date" in answer:
                reported = pd.to_datetime(answer["report_date"][keep], errors="coerce")
                reported = pd.Series(reported.to_numpy(), index=period_end.index)
                reported = reported.where(reported >= period_end)
            out = frame.reset_index(drop=True)
            out.insert(0, "announcement_date", reported.fillna(period_end + lag).to_numpy())
            out.insert(0, "period_end", period_end.to_numpy())
            store.write("ticker_fundamental_data", ticker, out)


def _metadata(service, params, universe: list[str]) -> pd.DataFrame:
    mapping = params.ds_metadata_fields
    reverse = {v.upper(): k for k, v in mapping.items()}
    rows = []
    for group in chunks(universe, params.ds_chunk_tickers):
        rows.append(long_values(service.static(",".join(group), list(mapping.values()))))
    raw = pd.concat(rows, ignore_index=True)
    out = pd.DataFrame({"ticker": universe})
    for column in mapping:
        out[column] = None
    asked = set(universe)
    for (code, field), value in raw.groupby(["instrument", "field"])["value"].last().items():
        if field.upper() in reverse and code in asked:
            out.loc[out["ticker"] == code, reverse[field.upper()]] = value
    return out
