"""Bloomberg vendor (D3): 01 queries a terminal through the `xbbg` package and logs each answer.

What is asked, all from parameters.py:
  - each index's members at every month end (bds INDX_MWEIGHT_HIST with the END_DATE_OVERRIDE
    override), one constituent_list log per (month end, index); an empty month after the index's
    first list is an error naming the index and the date (a rejected or ignored override would
    otherwise give no members, or today's members, without a word);
  - the union of every member ever (delisted names included) is the universe;
  - metadata for the universe (bdp), one metadata_array log;
  - raw daily market fields (bdh with all four adjustment flags false, DPDF's included), one
    ticker_market_data log per ticker; a security the terminal does not resolve is a warning
    naming it;
  - fundamentals as originally reported (FILING_STATUS = OR) on fiscal periods
    (periodicityAdjustment = FISCAL), with their announcement dates, one
    ticker_fundamental_data log per ticker (a terminal that refuses OR: its latest values, the
    source's fundamentals marked restated in the metadata);
  - dividends and capital changes (bds DVD_HIST_ALL), one corporate_actions log per ticker: cash
    types as dividends, splits, stock dividends and bonus issues as share ratios, a spin-off at
    the value its price adjustment factor gives (bds EQY_DVD_ADJUST_FACT, asked only then), and
    rights and anything else logged unapplied under its kind and counted (bloomberg_actions).

Requests are chunked (tickers x fields), retried with exponential backoff, and a rerun resumes: a
(data type, label) already logged within the current query window (`requery_after_hours`) is not
asked again unless `force`. Index members are logged as the index names them ("AAPL UW"); the
security asked for is that plus `bbg_security_suffix` (" Equity").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...config import Parameters
from ...errors import BadInputError, VendorUnavailableError
from ..datalog import read_log
from ..vocabulary import BLOOMBERG_RESTATED
from . import bloomberg_actions as capital
from .querylog import Datalog, Retrying, chunks, last_day, month_ends

log = logging.getLogger(__name__)

SOURCE = "bloomberg"
MEMBERS_FIELD = "INDX_MWEIGHT_HIST"
# the historical-members override, as Bloomberg documents it for INDX_MWEIGHT_HIST
MEMBERS_OVERRIDE = "END_DATE_OVERRIDE"
# raw prices: none of Bloomberg's four adjustments, DPDF's own setting included
RAW_PRICES = {
    "adjustmentNormal": False,
    "adjustmentAbnormal": False,
    "adjustmentSplit": False,
    "adjustmentFollowDPDF": False,
}


@dataclasses.dataclass(frozen=True)
class Request:
    """One xbbg call: what the retry loop runs and names in its messages."""

    what: str
    call: Callable[[], pd.DataFrame]


def _xbbg():
    """The optional dependency, or exit code 3 with what to install."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"xbbg(\.|$)")
    warnings.filterwarnings("ignore", message=r".*xbbg.*", category=FutureWarning)
    try:
        from xbbg import blp
        from xbbg.core.infra.blpapi_wrapper import is_available
    except ImportError:
        raise VendorUnavailableError(
            "source 'bloomberg' needs the xbbg package: pip install 'equity_backtest[bloomberg]'"
        ) from None
    if not is_available():
        raise VendorUnavailableError(
            "source 'bloomberg' needs Bloomberg's blpapi SDK and a running terminal (or B-PIPE): "
            "install blpapi from Bloomberg's index and log in to the terminal, then run 01 again"
        )
    return blp


class Terminal(Retrying):
    """Calls to xbbg with retry and backoff; long-format pandas frames with Bloomberg's field
    names as asked."""

    def __init__(self, params: Parameters):
        self.blp = _xbbg()
        self.retries = params.bbg_retries
        self.wait_s = params.bbg_retry_wait_s
        self.requests = 0
        from xbbg.backend import Backend, Format

        self.options = {"backend": Backend.PANDAS, "format": Format.LONG, "cache": False}
        self.refuses_original = False  # found asking fundamentals with FILING_STATUS = OR
        self._connect()

    def _connect(self) -> None:
        """One session start before anything is asked: no terminal is one message and exit 3."""
        from xbbg.core.infra import conn

        xbbg_log = logging.getLogger("xbbg")
        level = xbbg_log.level
        xbbg_log.setLevel(logging.CRITICAL)  # its own 'failed to start' lines would repeat ours
        try:
            conn.bbg_session()
        except Exception as exc:
            raise VendorUnavailableError(
                f"no Bloomberg terminal answers ({type(exc).__name__}: {exc}); start the terminal "
                "(or check the B-PIPE host) and log in, then run 01 again. Nothing was written."
            ) from None
        finally:
            xbbg_log.setLevel(level)

    def run(self, request: Request) -> pd.DataFrame:
        return self.retried(
            request.what,
            request.call,
            lambda exc: (
                f"Bloomberg did not answer {request.what} after {self.retries + 1} tries "
                f"({type(exc).__name__}: {exc}). Is the terminal running and logged in? "
                "Rerun 01 later: what is already logged is kept and not asked again."
            ),
        )

    def members(self, index: str, date: dt.date) -> pd.DataFrame:
        return self.run(
            Request(
                f"{MEMBERS_FIELD} of {index} at {date:%Y-%m-%d}",
                lambda: self.blp.bds(
                    index, MEMBERS_FIELD, **{MEMBERS_OVERRIDE: f"{date:%Y%m%d}"}, **self.options
                ),
            )
        )

    def reference(self, securities: list[str], fields: list[str]) -> pd.DataFrame:
        return self.run(
            Request(
                f"bdp of {len(securities)} securities x {fields}",
                lambda: self.blp.bdp(securities, fields, **self.options),
            )
        )

    def bulk(self, security: str, field: str) -> pd.DataFrame:
        return self.run(
            Request(
                f"bds {field} of {security}", lambda: self.blp.bds(security, field, **self.options)
            )
        )

    def history(self, securities, fields, start, end, **elements) -> pd.DataFrame:
        return self.run(
            Request(
                f"bdh of {len(securities)} securities x {fields}",
                lambda: self.blp.bdh(
                    securities,
                    fields,
                    f"{start:%Y-%m-%d}",
                    f"{end:%Y-%m-%d}",
                    **elements,
                    **self.options,
                ),
            )
        )


def query(
    params: Parameters, *, force: bool = False, progress: bool = False, today: dt.date | None = None
) -> dict[str, int]:
    """Ask the terminal for everything parameters.py names and log it; returns counts."""
    terminal = Terminal(params)  # fails before anything is written when no terminal is there
    store = Datalog(params.datalog_dir, params.requery_after_hours, force, SOURCE)
    end = last_day(params.query_end, today)
    start = params.query_start
    suffix = params.bbg_security_suffix

    members = _query_members(
        terminal, store, params.bbg_indexes or [params.index], start, end, progress
    )
    universe = sorted(members)
    log.info(
        "universe: %d tickers ever in %s",
        len(universe),
        ", ".join(params.bbg_indexes or [params.index]),
    )

    if params.bbg_metadata_fields and not store.has("metadata_array", "universe"):
        store.write("metadata_array", "universe", _metadata(terminal, params, universe))
    fx = _DividendFX(terminal, params, store, start, end)

    fundamentals = functools.partial(
        _fundamental_frames, on_restated=lambda: _mark_restated(store, universe)
    )
    per_ticker = [
        ("ticker_market_data", _market_frames, params.bbg_market_fields),
        ("ticker_fundamental_data", fundamentals, params.bbg_fundamental_fields),
    ]
    for data_type, frames, fields in per_ticker:
        todo = [t for t in universe if not store.has(data_type, t)]
        store.counts["skipped"] += len(universe) - len(todo)
        bar = tqdm(
            total=len(todo), desc=data_type, unit="ticker", disable=not progress, leave=False
        )
        for group in chunks(todo, params.bbg_chunk_tickers):
            asked = {t + suffix: t for t in group}
            for ticker, frame in frames(terminal, params, asked, fields, start, end):
                if data_type == "ticker_market_data" and params.bbg_dividend_field:
                    # a ticker's actions are logged before its prices, so "prices logged" means both
                    actions = _corporate_actions(terminal, params, fx, ticker, frame, start, end)
                    if len(actions):
                        store.write("corporate_actions", ticker, actions)
                store.write(data_type, ticker, frame)
            bar.update(len(group))
        bar.close()
    log.info(
        "bloomberg: %d requests, %d logfiles written, %d already current",
        terminal.requests,
        store.counts["written"],
        store.counts["skipped"],
    )
    return {"written": store.counts["written"], "already_logged": store.counts["skipped"]}


def _query_members(terminal, store, indexes, start, end, progress) -> set[str]:
    """Monthly member lists of each index; returns every member ever (from new and logged lists)."""
    members: set[str] = set()
    listed: set[str] = set()  # indexes that have given a list
    before: dict[str, dt.date] = {}  # index -> first month asked that had none
    asks = [(index, day) for index in indexes for day in month_ends(start, end)]
    for index, day in tqdm(
        asks, desc="index members", unit="list", disable=not progress, leave=False
    ):
        label = f"{day:%Y%m%d}_{index}"
        if store.has("constituent_list", label):
            store.counts["skipped"] += 1
            members.update(read_log(store.current[("constituent_list", label)])["ticker"])
            continue
        raw = terminal.members(index, day)
        if raw.empty:
            if index in listed:
                raise VendorUnavailableError(
                    f"Bloomberg gave no {MEMBERS_FIELD} members of {index} for {day:%Y-%m-%d}, "
                    f"after giving lists for earlier months: the terminal rejected or ignored "
                    f"the {MEMBERS_OVERRIDE} override, or the index has no list that day; "
                    "nothing is guessed (rerun to resume, or set query_start after that date)"
                )
            before.setdefault(index, day)
            continue  # before the index's first list (before it existed, say): said below
        listed.add(index)
        member_col = capital.column(raw, "member", f"{MEMBERS_FIELD} of {index}")
        weight_col = capital.column(raw, "weight", f"{MEMBERS_FIELD} of {index}", required=False)
        frame = pd.DataFrame(
            {
                "date": pd.Timestamp(day),
                "index": index,
                "ticker": raw[member_col].astype(str).str.strip(),
                "weight": pd.to_numeric(raw[weight_col], errors="coerce") if weight_col else None,
            }
        ).drop_duplicates("ticker")
        store.write("constituent_list", label, frame)
        members.update(frame["ticker"])
        listed.add(index)
    for index, day in before.items():
        if index in listed:
            log.warning("%s has no member list before its first one (none from %s on, until "
                        "one was given): the months before it are left out", index, day)  # fmt: skip
    if not members:
        raise BadInputError(
            f"Bloomberg returned no members for {', '.join(indexes)} between {start} and {end}; "
            "check the index tickers (e.g. 'SPX Index') in parameters.py (bbg_indexes or index)"
        )
    return members


def _wide(long: pd.DataFrame, fields: list[str]) -> dict[str, pd.DataFrame]:
    """Long (ticker, date, field, value) -> {security: frame with one column per asked field}."""
    if long.empty:
        return {}
    long = long.assign(field=long["field"].str.upper())
    out = {}
    for security, rows in long.groupby("ticker", sort=True):
        wide = rows.pivot_table(
            index="date", columns="field", values="value", aggfunc="last", dropna=False
        )
        wide = wide.reindex(columns=[f.upper() for f in fields])
        wide.columns = fields
        out[str(security)] = wide.sort_index()
    return out


def _history(
    terminal, params, asked, fields, start, end, quiet: bool = False, **elements
) -> dict[str, pd.DataFrame]:
    """bdh over field chunks for one ticker chunk, joined per security on date; a security
    without data is a warning unless `quiet`."""
    securities = list(asked)
    parts: dict[str, list[pd.DataFrame]] = {}
    for field_group in chunks(fields, params.bbg_chunk_fields):
        raw = terminal.history(securities, field_group, start, end, **elements)
        for security, frame in _wide(raw, field_group).items():
            parts.setdefault(security, []).append(frame)
    if not quiet:
        _say_missing([s for s in securities if s not in parts], elements)
    return {s: pd.concat(f, axis=1) for s, f in parts.items()}


def _say_missing(securities: list[str], elements: dict) -> None:
    """A warning per security the terminal gave nothing for: xbbg drops a securityError (and a
    fieldException) without a word."""
    for security in securities:
        log.warning(
            "%s: the terminal returned no %s data for it (a ticker that no longer resolves, "
            "such as a dead or renamed company's, or one without data in the window); it "
            "has none in the datalog",
            security,
            elements.get("periodicitySelection", elements.get("Per", "daily")),
        )


def _market_frames(terminal, params, asked, mapping, start, end):
    fields = list(mapping.values())
    elements = dict(RAW_PRICES)  # raw: splits and dividends are logged as corporate actions
    if params.bbg_currency:
        elements["Currency"] = params.bbg_currency
    for security, wide in _history(terminal, params, asked, fields, start, end, **elements).items():
        frame = wide.rename(columns={v: k for k, v in mapping.items()})
        frame = frame.dropna(how="all")
        if frame.empty:
            continue
        frame.index = pd.to_datetime(frame.index)
        yield asked[security], frame.rename_axis("date").reset_index()


def _fundamental_frames(terminal, params, asked, mapping, start, end, on_restated=None):
    """Fundamentals as originally reported, on the company's fiscal periods (period_end is a
    fiscal period end). A terminal that answers nothing with FILING_STATUS = OR but answers
    without it cannot give first-reported values: its default (latest) values are taken, after
    `on_restated()` has marked the source's fundamentals as restated, and later chunks are
    asked without the override."""
    announcement = params.bbg_announcement_field
    fields = [*mapping.values(), announcement]
    elements = {
        "Per": params.bbg_fundamental_periodicity,
        "periodicityAdjustment": "FISCAL",
        "FILING_STATUS": "OR",
    }
    if params.bbg_currency:
        elements["Currency"] = params.bbg_currency
    got = {}
    if not terminal.refuses_original:
        got = _history(terminal, params, asked, fields, start, end, quiet=True, **elements)
        _say_missing([s for s in asked if s not in got] if got else [], elements)
    if not got:  # nothing as first reported: none at all, or a terminal that refuses OR
        latest = {k: v for k, v in elements.items() if k != "FILING_STATUS"}
        got = _history(terminal, params, asked, fields, start, end, **latest)
        if got and not terminal.refuses_original and on_restated is not None:
            terminal.refuses_original = True
            on_restated()
    for security, wide in got.items():
        dates = wide.pop(announcement)
        frame = wide.rename(columns={v: k for k, v in mapping.items()}).astype(float)
        scale = params.bbg_fundamental_scale
        for metric in mapping:  # millions (Bloomberg's unit) -> units, at the boundary
            frame[metric] = frame[metric] * scale.get(metric, scale.get("default", 1.0))
        frame.insert(0, "announcement_date", pd.to_datetime(dates, errors="coerce"))
        frame.insert(0, "period_end", pd.to_datetime(wide.index))
        frame = frame.dropna(how="all", subset=list(mapping))
        if frame.empty:
            continue
        yield asked[security], frame.reset_index(drop=True)


def _mark_restated(store: Datalog, universe: list[str]) -> None:
    """The terminal cannot give first-reported fundamentals: the universe's metadata is logged
    again with its `fundamentals` column saying so (vocabulary.BLOOMBERG_RESTATED), before any
    restated figure is logged, so 02 marks the source's fundamentals as restated (and
    restated_lag_days applies) however a query is interrupted and resumed."""
    key = ("metadata_array", "universe")
    if key in store.current:
        meta = read_log(store.current[key])
    else:  # (no metadata asked: a minimal one carries the mark)
        meta = pd.DataFrame({"ticker": universe, "name": "", "sector": ""})
    if "fundamentals" in meta and (meta["fundamentals"].astype(str) == BLOOMBERG_RESTATED).all():
        return  # (marked by an earlier, interrupted query)
    log.warning(
        "the terminal gives no fundamentals with FILING_STATUS = OR (as first reported) but "
        "gives them without it: its default, the latest (restated) values, are logged, and "
        "the dataset marks this source's fundamentals as restated (restated_lag_days applies)"
    )
    store.write("metadata_array", "universe", meta.assign(fundamentals=BLOOMBERG_RESTATED))


def _corporate_actions(terminal, params, fx, ticker: str, prices: pd.DataFrame, start, end):
    """A ticker's capital changes (bloomberg_actions): DVD_HIST_ALL's rows, cash converted to
    the prices' currency, and a spin-off valued from EQY_DVD_ADJUST_FACT (asked only then)."""
    security = ticker + params.bbg_security_suffix
    booked = fx.convert(ticker, capital.actions(terminal.bulk(security, params.bbg_dividend_field),
                                                start, end))  # fmt: skip
    if (booked["kind"] == capital.SPINOFF).any():
        factors = terminal.bulk(security, capital.ADJUSTMENT_FIELD)
        closes = prices.set_index("date")["close"].dropna() if "close" in prices else pd.Series()
        booked = capital.value_spinoffs(booked, factors, closes)
    capital.say_unapplied(booked)
    return booked.drop(columns="kind")


def _metadata(terminal, params, universe: list[str]) -> pd.DataFrame:
    mapping = params.bbg_metadata_fields
    suffix = params.bbg_security_suffix
    rows = []
    for group in chunks(universe, params.bbg_chunk_tickers):
        raw = terminal.reference([t + suffix for t in group], list(mapping.values()))
        rows.append(raw)
    raw = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    out = pd.DataFrame({"ticker": universe})
    if raw.empty:
        return out.assign(**{k: None for k in mapping})
    raw = raw.assign(field=raw["field"].str.upper())
    wide = raw.pivot_table(index="ticker", columns="field", values="value", aggfunc="last")
    for column, field in mapping.items():
        values = wide[field.upper()] if field.upper() in wide else pd.Series(dtype=object)
        out[column] = [values.get(t + suffix) for t in universe]
    return out


class _DividendFX:
    """DVD_HIST_ALL's cash amounts are in the dividend's currency, while prices are asked in
    `bbg_currency`: a dividend of a security whose currency (the metadata's `currency`, CRNCY)
    differs is converted at the exchange rate of its ex-date (the last PX_LAST of
    "<CCY><TARGET> Curncy" on or before it), so cash and prices share one unit. Nothing to do
    without bbg_currency; a rate that is missing leaves the amount unconverted, with a warning."""

    def __init__(self, terminal, params: Parameters, store, start, end):
        self.terminal, self.target, self.start, self.end = terminal, params.bbg_currency, start, end
        self.rates: dict[str, pd.Series] = {}
        self.currency: dict[str, str] = {}
        if not self.target or ("metadata_array", "universe") not in store.current:
            return
        meta = read_log(store.current[("metadata_array", "universe")])
        if "currency" in meta:
            self.currency = {
                str(t): str(c).strip().upper()
                for t, c in zip(meta["ticker"], meta["currency"], strict=True)
                if isinstance(c, str) and c.strip()
            }
        else:
            log.warning("bbg_currency is set but the metadata has no currency column: dividends "
                        "are logged in their own currency")  # fmt: skip

    def convert(self, ticker: str, actions: pd.DataFrame) -> pd.DataFrame:
        cur = self.currency.get(ticker)
        cash = actions["action"] == "dividend"
        if not self.target or cur is None or cur == self.target.upper() or not cash.any():
            return actions
        rates = self._rates(cur)
        at = rates.reindex(rates.index.union(actions.loc[cash, "date"])).ffill()
        rate = at.reindex(actions.loc[cash, "date"]).to_numpy()
        missing = ~np.isfinite(rate)
        if missing.any():
            log.warning("%s: no %s%s rate on or before %d dividend ex-date(s); those amounts stay "
                        "in %s", ticker, cur, self.target, int(missing.sum()), cur)  # fmt: skip
        out = actions.copy()
        out.loc[cash, "value"] = np.where(
            missing, out.loc[cash, "value"], out.loc[cash, "value"] * rate
        )
        return out

    def _rates(self, cur: str) -> pd.Series:
        if cur not in self.rates:
            pair = f"{cur}{self.target.upper()} Curncy"
            raw = self.terminal.history([pair], ["PX_LAST"], self.start, self.end)
            wide = _wide(raw, ["PX_LAST"]).get(pair)
            series = (wide["PX_LAST"] if wide is not None else pd.Series(dtype=float)).astype(float)
            series.index = pd.to_datetime(series.index)
            self.rates[cur] = series.dropna().sort_index()
        return self.rates[cur]


def latest_prices(params: Parameters, tickers: list[str]) -> pd.Series:
    """LAST_PRICE of each ticker now (xbbg's bdp): a live account's intraday heartbeat."""
    terminal = Terminal(params)
    suffix = params.bbg_security_suffix
    raw = terminal.reference([t + suffix for t in tickers], ["LAST_PRICE"])
    if raw.empty:
        return pd.Series(dtype=float)
    values = raw.assign(field=raw["field"].str.upper())
    values = values[values["field"] == "LAST_PRICE"].set_index("ticker")["value"]
    out = pd.to_numeric(values, errors="coerce")
    out.index = [str(i).removesuffix(suffix) for i in out.index]
    return out.reindex(tickers)
