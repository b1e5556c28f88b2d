"""The data-quality report (D7) of one dataset version: what is there, what is missing, what looks
wrong. Written by 02 as quality_report.md and quality_report.json beside the tables.

Checks, per source:
- counts of logs, tickers and rows per table;
- coverage by month: tickers with market data, index members, members with market data, members
  with a fundamental report public that month or earlier;
- index members with no market data at all, or no fundamentals at all, and members listed
  before their security traded (a reused ticker: consistency.members_before_prices);
- suspicious values: non-positive prices; implausible prices (above MAX_PLAUSIBLE_PRICE, which
  the engine treats as missing, or a one-day spike of SPIKE times or more that reverts the next
  day); runs of ZERO_VOLUME_RUN or more consecutive trading
  rows with zero volume; one-day close moves within 5% of a split ratio (2, 3, 4, 5, 10 or their
  inverses) with no split recorded that day: an unadjusted split, or a bad print;
- gaps: days inside a ticker's trading range on which other tickers of the source traded but it
  has no row;
- calendar: the source's trading days against its exchange's calendar (exchange_calendars; the
  metadata's "exchange" column where it names one, else the exchange_calendar setting): sessions
  with no row for any ticker (a whole missing day) and days with rows that are no session (a
  holiday or weekend in the data). Daily bars only: weekly and monthly bars are not sessions.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..errors import BadInputError
from . import calendars, consistency, frequency, fundamentals_checks, market_checks, quality_parts
from .consistency import (
    fundamentals_vintage,
    market_cap_units,
    members_before_prices,
    unapplied_distributions,
    vendor_screens,
)
from .market_checks import (  # noqa: F401  (the checks' thresholds, named here as before)
    EXAMPLES,
    MAX_PLAUSIBLE_PRICE,
    SPIKE,
    SPLIT_RATIOS,
    ZERO_VOLUME_RUN,
)
from .market_checks import (
    examples as _examples,
)


def calendar_check(dates: pd.DatetimeIndex, exchange: str) -> dict:
    """A source's trading days against its exchange's sessions from its first day to its last."""
    dates = pd.DatetimeIndex(np.unique(dates.to_numpy())).normalize()
    if len(dates) < 2:
        return {"exchange": exchange, "checked": False, "why": "fewer than two days of data"}
    try:
        bars = frequency.infer(dates)
    except BadInputError as err:
        return {"exchange": exchange, "checked": False, "why": str(err)}
    if bars != "daily":
        return {"exchange": exchange, "checked": False, "why": f"{bars} bars are not sessions"}
    try:
        sessions = calendars.sessions(exchange, dates[0], dates[-1])
    except BadInputError as err:
        return {"exchange": exchange, "checked": False, "why": str(err)}
    missing = sessions.difference(dates)
    extra = dates.difference(sessions)
    return {
        "exchange": calendars.code(exchange) or exchange,
        "checked": True,
        "missing_sessions": {"count": len(missing), "examples": [f"{d:%Y-%m-%d}" for d in missing[:EXAMPLES]]},
        "days_not_sessions": {"count": len(extra), "examples": [f"{d:%Y-%m-%d}" for d in extra[:EXAMPLES]]},
    }  # fmt: skip


def source_exchange(metadata: pd.DataFrame, default: str) -> str:
    """The exchange a source's metadata names most often, where it is a known calendar."""
    if "exchange" in metadata and len(metadata):
        named = metadata["exchange"].dropna().astype(str)
        named = named[~named.isin(["", "nan", "None"])]
        if len(named):
            exchange = calendars.code(named.value_counts().index[0])
            if exchange:
                return exchange
    return default


def _of_source(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """The rows of one source (the table itself, not a copy, where it holds only that one)."""
    mine = (table["source"] == source).to_numpy()
    return table if mine.all() else table[mine]


def source_report(
    tables: dict[str, pd.DataFrame | None],
    source: str,
    exchange: str = "XNYS",
    market: list[market_checks.Summary] | None = None,
    fundamentals: fundamentals_checks.Summary | None = None,
    memo: quality_parts.Memo | None = None,
) -> dict:
    """One source's report. `market`: its market rows' summaries, one per year part (a build
    keeps them beside its parts); None summarises tables["market"] whole, as one part.
    `fundamentals`: its fundamentals' summary (a build keeps it beside the table, which is then
    not read); None summarises tables["fundamentals"]."""
    if market is None:
        market = [market_checks.summarise(_of_source(tables["market"], source))]
    if fundamentals is None:
        fundamentals = fundamentals_checks.summarise(_of_source(tables["fundamentals"], source))
    first_public = fundamentals_checks.first_public(fundamentals)
    cons = _of_source(tables["constituents"], source)
    ca = _of_source(tables["corporate_actions"], source)
    members = set(_values(cons["ticker"]))
    with_fund = set(first_public.index)
    splits = set(
        zip(
            ca.loc[ca["action"] == "split", "ticker"].astype(str),
            ca.loc[ca["action"] == "split", "date"],
            strict=True,
        )
    )
    checks = market_checks.combine(market, splits)
    trading_days = checks["trading_days"]
    span = checks["spans"]
    with_market = set(span.index)
    expected = trading_days.searchsorted(
        span["last_day"], side="right"
    ) - trading_days.searchsorted(span["first_day"])
    gaps = (expected - span["size"]).rename("missing_days")
    gaps = gaps[gaps > 0].sort_values(ascending=False).reset_index()

    coverage = _coverage_by_part(market, cons, first_public, memo, source)

    return {
        "source": source,
        "rows": {
            name: int(span["size"].sum())
            if name == "market"
            else fundamentals_checks.rows(fundamentals)
            if name == "fundamentals"
            else int((t["source"] == source).sum())
            for name, t in tables.items()
        },
        "tickers_with_market_data": len(with_market),
        "index_members_ever": len(members),
        "members_without_market_data": sorted(members - with_market),
        "members_without_fundamentals": sorted(members - with_fund),
        **{check: checks[check] for check in market_checks.FLAGGING},
        "gaps": {
            "tickers": len(gaps),
            "missing_days": int(gaps["missing_days"].sum()) if len(gaps) else 0,
            "examples": _examples(gaps),
        },
        "calendar": calendar_check(
            trading_days,
            source_exchange(tables["metadata"][tables["metadata"]["source"] == source], exchange),
        ),
        "coverage_by_month": coverage.reset_index(names="month").to_dict("records"),
        **(
            {"fundamentals_vintage": vintage}
            if (vintage := fundamentals_vintage(tables["metadata"], source))
            and fundamentals_checks.rows(fundamentals)
            else {}
        ),
        **unapplied_distributions(ca),
        **vendor_screens(ca),
        "market_cap_units": _units(
            tables["market"], source, fundamentals["shares"], market, trading_days, memo
        ),
        **members_before_prices(
            cons, span["first_day"], tables["metadata"][tables["metadata"]["source"] == source]
        ),
    }


def _coverage_by_part(
    parts: list,
    cons: pd.DataFrame,
    first_public: pd.Series,
    memo: quality_parts.Memo | None,
    source: str,
) -> pd.DataFrame:
    """The coverage table, its parts' rows in part order: those the memo keeps taken, the
    others made in one pass over their pairs joined (a month's counts read only its own pairs
    and lists, so rows made together are the rows made apart) and kept part by part."""
    rows = [None if memo is None else memo.kept_coverage(source, i) for i in range(len(parts))]
    todo = [i for i, frame in enumerate(rows) if frame is None]
    if todo:
        pairs = [parts[i]["pairs"] for i in todo]
        made = _coverage(pd.concat(pairs, ignore_index=True), cons, first_public)
        if len(todo) == len(parts) and not any(len(p) for p in pairs):
            return made  # (a source with lists and no prices: the months of its lists)
        for i, part in zip(todo, pairs, strict=True):
            months = np.unique(part["month"].to_numpy(np.int64))
            rows[i] = made.loc[pd.PeriodIndex.from_ordinals(months, freq="M").astype(str)]
            if memo is not None:
                memo.keep_coverage(source, i, rows[i])
    return pd.concat(rows)


def _coverage(pairs: pd.DataFrame, cons: pd.DataFrame, first_public: pd.Series) -> pd.DataFrame:
    """The coverage table's rows of the months of these (month, ticker) pairs (months as
    text): tickers with market data, and where the source has lists, the index members in
    force at each month's end, those with market data that month and those with fundamentals
    public by then."""
    months, counts = np.unique(pairs["month"].to_numpy(np.int64), return_counts=True)
    coverage = pd.DataFrame(
        {"tickers_with_market_data": counts},
        index=pd.PeriodIndex.from_ordinals(months, freq="M"),
    )
    if len(cons):
        months = (  # (a source with lists and no prices: the months of its lists)
            coverage.index
            if len(coverage)
            else pd.PeriodIndex(np.unique(cons["date"].dt.to_period("M").to_numpy()), freq="M")
        )
        listed = _in_force(cons, months)
        cmonth = listed["month"]
        coverage["index_members"] = listed.groupby("month")["ticker"].nunique()
        traded = consistency.pairs_in(
            (cmonth.array.asi8, listed["ticker"].to_numpy(object)),
            (pairs["month"].to_numpy(np.int64), pairs["ticker"].to_numpy(object)),
        )
        coverage["members_with_market_data"] = listed[traded].groupby("month")["ticker"].nunique()
        known_from = first_public.reindex(listed["ticker"]).to_numpy()  # NaT: never reported
        listed["has_fundamentals"] = known_from <= listed["month"].dt.end_time.to_numpy()
        coverage["members_with_fundamentals"] = listed.groupby("month")["has_fundamentals"].sum()
    coverage = coverage.fillna(0).astype(int)
    coverage.index = coverage.index.astype(str).astype(object)
    return coverage


def _values(column: pd.Series) -> list[str]:
    """The distinct values of a text column as strings (from its categories when encoded)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        return [str(v) for v in column.cat.categories[np.unique(codes[codes >= 0])]]
    return list(column.astype(str).unique())


def _units(
    table, source: str, shares: pd.DataFrame, parts: list, days, memo: quality_parts.Memo | None
) -> dict:
    """market_cap_units on a whole table; on a table kept in year parts (read by column,
    datasets.Columns), part by part (each part's ratios kept by the memo where it has them):
    a part's period ends are those from its first day to the next part's, read from the
    month-end rows its summary keeps and, for other days a period end falls on, its file."""
    if isinstance(table, pd.DataFrame):
        return market_cap_units(_of_source(table, source), shares)
    if shares.empty or not any(bool(p["caps"]["any"].iloc[0]) for p in parts):
        return consistency.no_caps()
    days = days.to_numpy()
    at = np.searchsorted(days, shares["period_end"].to_numpy(), side="right") - 1
    held = [i for i, p in enumerate(parts) if len(p["days"])]  # (the parts of its days)
    firsts = np.array([parts[i]["days"]["date"].to_numpy()[0] for i in held], dtype=days.dtype)
    # the part of the day each period end is compared on (none before the first day: dropped)
    part_of = np.searchsorted(firsts, days[np.maximum(at, 0)], side="right") - 1
    following = [firsts[k + 1] if k + 1 < len(held) else None for k in range(len(held))]
    ratios = [None if memo is None else memo.kept_ratios(source, i, following[k]) for k, i in enumerate(held)]  # fmt: skip
    todo = [k for k, frame in enumerate(ratios) if frame is None]
    if todo:  # the parts without kept ratios, in one pass (split by the day each is read on)
        rows_on = functools.partial(_rows_on, table, source, [parts[held[k]] for k in todo])
        made = consistency.cap_ratios(rows_on, shares[np.isin(part_of, todo)], days)
        of = np.searchsorted(firsts, made["date"].to_numpy(), side="right") - 1
        for k in todo:
            ratios[k] = made[of == k].reset_index(drop=True)
            if memo is not None:
                memo.keep_ratios(source, held[k], following[k], ratios[k])
    none = pd.DataFrame({"ticker": pd.Series(dtype=object), "ratio": pd.Series(dtype=float)})
    return consistency.units_verdict(pd.concat([none, *ratios], ignore_index=True))


def _rows_on(table, source: str, parts: list, wanted: np.ndarray) -> pd.DataFrame:
    """The rows (ticker, date, close, market cap) of the source on the days `wanted`, days of
    these parts: the month-end rows their summaries keep, the others read from their files."""
    ends = pd.concat([p["month_ends"] for p in parts], ignore_index=True)
    end_days = np.concatenate([p["month_end_days"]["date"].to_numpy() for p in parts])
    other = np.setdiff1d(wanted, end_days)
    found = ends[ends["date"].isin(wanted)]
    if len(other):
        more = table.rows_on(other, ["source", "ticker", "date", "close", "market_cap"])
        more = _of_source(more, source).drop(columns="source")
        found = pd.concat([found, more.astype({"ticker": object})], ignore_index=True)
    return found


def report(
    tables: dict[str, pd.DataFrame | None],
    manifest: dict,
    calendar: str = "XNYS",
    market: dict[str, list[market_checks.Summary]] | None = None,
    fundamentals: dict[str, fundamentals_checks.Summary] | None = None,
    memo: quality_parts.Memo | None = None,
) -> dict:
    """The report of a dataset version; `calendar` is the exchange assumed where a source's
    metadata names none. `market`: per source, the summaries of the market table's year parts
    (then tables["market"] may be read by column); None checks tables["market"] whole.
    `fundamentals`: per source, the fundamentals' summaries (then tables["fundamentals"] may be
    None: not read); None summarises tables["fundamentals"]. `memo`: the results kept per part
    (a key for each of `market`'s parts), taken where kept, made and kept otherwise."""
    with_prices = set(market) if market is not None else set(_values(tables["market"]["source"]))
    sources = sorted(with_prices | set(_values(tables["constituents"]["source"])))
    return {
        "version": manifest["version"],
        "logs": len(manifest["logs"]),
        "skipped_logs": manifest["skipped_logs"],
        "sources": [
            source_report(
                tables,
                s,
                calendar,
                None if market is None else market.get(s) or [market_checks.nothing()],
                None
                if fundamentals is None
                else fundamentals.get(s) or fundamentals_checks.nothing(),
                memo if market is not None and market.get(s) else None,
            )
            for s in sources
        ],
    }


def summary_lines(rep: dict) -> list[str]:
    """The few lines 02 prints."""
    lines = [f"quality: {rep['logs']} logs, {len(rep['skipped_logs'])} skipped"]
    for s in rep["sources"]:
        lines.append(
            f"quality [{s['source']}]: {s['tickers_with_market_data']} tickers with prices, {s['index_members_ever']} "
            f"index members ever ({len(s['members_without_market_data'])} without prices, "
            f"{len(s['members_without_fundamentals'])} without fundamentals); suspicious: "
            f"{s['non_positive_prices']['count']} non-positive prices, "
            f"{s.get('implausible_prices', {}).get('count', 0)} implausible prices, "
            f"{s['zero_volume_runs']['count']} zero-volume "
            f"runs, {s['unexplained_split_like_jumps']['count']} split-like jumps; {s['gaps']['missing_days']} "
            f"missing days in {s['gaps']['tickers']} tickers; {_calendar_line(s.get('calendar'))}"
        )
        if "unapplied_distributions" in s:
            lines.append(f"quality [{s['source']}]: {_unapplied_line(s)}")
        if "vendor_screens" in s:
            lines.append(f"quality [{s['source']}]: {_screens_line(s)}")
        units = s.get("market_cap_units", {})
        if units.get("checked") and not units["consistent"]:
            lines.append(f"quality [{s['source']}]: {_units_line(units)}")
        if "members_before_prices" in s:
            lines.append(f"quality [{s['source']}]: {_early_members_line(s)}")
    return lines


def _early_members_line(s: dict) -> str:
    found = s["members_before_prices"]
    names = ", ".join(
        f"{e['ticker']} (listed from {e['listed_from']}, "
        + (f"first price {e['first_price']}" if e["first_price"] else "no price")
        + (f", listed on the exchange {e['listing_date']}" if e["listing_date"] else "")
        + ")"
        for e in found["examples"][:5]
    )
    return (
        f"{found['count']} index member(s) listed before their security traded: {names}; a "
        "reused ticker (the list named a company that died, the ticker now names a later one) "
        "loses the dead company's returns: find its own identifier and import its prices"
    )


def _units_line(units: dict) -> str:
    return (
        f"market cap is {units['median_ratio']:g} x close x shares outstanding at the median "
        f"period end (expected about 1): the vendor's units differ (millions? thousands?); check "
        "its scale settings before trusting cap weights or ratios of the two"
    )


def _unapplied_line(s: dict) -> str:
    counts = ", ".join(f"{v['count']} {k}" for k, v in s["unapplied_distributions"].items())
    return (
        f"distributions not applied: {counts} (logged for the record; docs/pipeline.md says "
        "what each kind is)"
    )


def _screens_line(s: dict) -> str:
    found = s["vendor_screens"]
    padded = {k: int(found[k]["value_sum"]) for k in ("holiday_padding", "padded") if k in found}
    counts = ", ".join(
        f"{v['count']} {k}" + (f" ({padded[k]} days removed)" if k in padded else "")
        for k, v in found.items()
    )
    return (
        f"vendor screens: {counts} (padding removed, the rest reported with prices kept; "
        "docs/pipeline.md says what each screen does)"
    )


def _calendar_line(check: dict | None) -> str:
    if not check:
        return "calendar not checked"
    if not check["checked"]:
        return f"calendar {check['exchange']} not checked ({check['why']})"
    return (
        f"against the {check['exchange']} calendar {check['missing_sessions']['count']} sessions "
        f"missing, {check['days_not_sessions']['count']} days that are no session"
    )


def markdown(rep: dict) -> str:
    out = [
        f"# Data-quality report, dataset {rep['version']}",
        "",
        f"{rep['logs']} logfiles; skipped: {', '.join(rep['skipped_logs']) or 'none'}.",
        "",
    ]
    for s in rep["sources"]:
        out += [f"## Source `{s['source']}`", "", "| table | rows |", "|---|---|"]
        out += [f"| {k} | {v:,d} |" for k, v in s["rows"].items()]
        out += [
            "",
            f"- tickers with market data: {s['tickers_with_market_data']}",
            f"- index members ever: {s['index_members_ever']}",
            f"- members without market data: {', '.join(s['members_without_market_data']) or 'none'}",
            f"- members without fundamentals: {', '.join(s['members_without_fundamentals']) or 'none'}",
            *(
                [f"- fundamentals: {s['fundamentals_vintage']}"]
                if "fundamentals_vintage" in s
                else []
            ),
            *([f"- {_unapplied_line(s)}"] if "unapplied_distributions" in s else []),
            *([f"- {_screens_line(s)}"] if "vendor_screens" in s else []),
            *([f"- {_early_members_line(s)}"] if "members_before_prices" in s else []),
            *(
                [f"- {_units_line(s['market_cap_units'])}"]
                if s.get("market_cap_units", {}).get("checked")
                and not s["market_cap_units"]["consistent"]
                else []
            ),
            "",
        ]
        for key, title in (
            ("non_positive_prices", "Non-positive prices"),
            (
                "implausible_prices",
                f"Implausible prices (above {MAX_PLAUSIBLE_PRICE:g}, or spikes of {SPIKE:g}x that revert)",
            ),
            ("zero_volume_runs", f"Zero-volume runs of {ZERO_VOLUME_RUN}+ days"),
            ("unexplained_split_like_jumps", "Split-like jumps with no split recorded"),
            ("gaps", "Gaps (days others traded but this ticker has no row)"),
        ):
            block = s[key]
            count = block.get("count", block.get("tickers"))
            out += [f"### {title}: {count}", ""]
            if block["examples"]:
                cols = list(block["examples"][0])
                out += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                out += [
                    "| " + " | ".join(str(e[c]) for c in cols) + " |" for e in block["examples"]
                ]
                out.append("")
        check = s.get("calendar")
        out += [f"### Calendar: {_calendar_line(check)}", ""]
        if check and check["checked"]:
            for key, title in (
                ("missing_sessions", "sessions with no data"),
                ("days_not_sessions", "days with data that are no session"),
            ):
                if check[key]["examples"]:
                    out += [f"- {title}: {', '.join(check[key]['examples'])}"]
            out.append("")
        out += [
            "### Coverage by month",
            "",
            "| " + " | ".join(s["coverage_by_month"][0]) + " |" if s["coverage_by_month"] else "",
        ]
        if s["coverage_by_month"]:
            out.append("|" + "---|" * len(s["coverage_by_month"][0]))
            out += [
                "| " + " | ".join(str(v) for v in row.values()) + " |"
                for row in s["coverage_by_month"]
            ]
        out.append("")
    return "\n".join(out) + "\n"


def _in_force(cons: pd.DataFrame, months: pd.PeriodIndex) -> pd.DataFrame:
    """The members of each index in force at each month's end (the latest list dated on or
    before it, as the engine uses them), one row per month, index and ticker: a single list
    given once counts in every later month, not only in the month it is dated."""
    parts = []
    for _, lists in cons.groupby("index", observed=True):
        dates = np.sort(lists["date"].unique())
        pos = dates.searchsorted(months.end_time.to_numpy(), side="right") - 1
        month_list = pd.DataFrame({"month": months[pos >= 0], "date": dates[pos[pos >= 0]]})
        parts.append(month_list.merge(lists[["date", "ticker"]], on="date"))
    if not parts:
        return pd.DataFrame({"month": pd.PeriodIndex([], freq="M"), "ticker": []})
    out = pd.concat(parts, ignore_index=True)
    return out.assign(ticker=out["ticker"].astype(object))[["month", "ticker"]]
