"""The data vocabulary every stage reads: logfile types, dataset tables, their keys and columns.

One home, so that a vendor, the datalog, the builder, the panel and the settings can never
disagree about what a market field or a table is.

    logfile type (datalog)      -> dataset table  (key for "latest query wins")
    ticker_market_data          -> market         (source, ticker, date)
    ticker_fundamental_data     -> fundamentals   (source, ticker, period_end, announcement_date, metric)
    constituent_list            -> constituents   (source, index, date; a newer list replaces the list)
    metadata_array              -> metadata       (source, ticker)
    market_regimes              -> regimes        (source; a newer log replaces the source's list)
    corporate_actions           -> corporate_actions (source, ticker, date, action)
"""

from __future__ import annotations

import dataclasses

# raw (unadjusted) daily fields of every market log, in this order
MARKET_FIELDS = ("open", "high", "low", "close", "volume", "market_cap")
PRICE_FIELDS = ("open", "high", "low", "close")
# Distributions a vendor reports that the engine does not apply, logged for the record under
# their kind's name (value: the amount or factor given, if any) and counted in the quality
# report: rights without a value, a share exchanged away in a reorganisation (its delisting ends
# it), a notice with no payment to holders, and a distribution given with no amount at all.
UNAPPLIED_DISTRIBUTIONS = ("rights", "reorganisation", "notice", "unvalued")
# What a vendor's screens found in its answer at 01 (the Datastream vendor's: holiday and
# post-death padding removed, reversals, low prices, a return index that disagrees), logged with
# the corporate actions for the record (the engine ignores them) and counted in the quality report.
SCREEN_RECORDS = (
    "holiday_padding", "padded", "reversal", "low_price", "ri_mismatch", "market_cap_from_shares",
)  # fmt: skip
CORPORATE_ACTIONS = ("split", "dividend", "delisting", *UNAPPLIED_DISTRIBUTIONS, *SCREEN_RECORDS)


@dataclasses.dataclass(frozen=True)
class LogType:
    """What a logfile of one type must hold (columns may be extra where extra_numeric)."""

    table: str
    required: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    extra_numeric: bool = False
    # columns whose repeat within one log is an error (one row per key), () = none checked
    unique: tuple[str, ...] = ()


LOG_TYPES: dict[str, LogType] = {
    # label: <YYYYMMDD>_<INDEX>; members of an index on a list date (weight may be blank)
    "constituent_list": LogType(
        "constituents", ("date", "index", "ticker", "weight"), ("weight",), ("date",)
    ),
    # label: what was asked (an index name or 'universe'); one row per ticker
    "metadata_array": LogType("metadata", ("ticker", "name", "sector"), unique=("ticker",)),
    # label: the ticker; raw (unadjusted) daily prices and volume
    "ticker_market_data": LogType(
        "market", ("date", *MARKET_FIELDS), MARKET_FIELDS, ("date",), True, ("date",)
    ),
    # label: the ticker; one row per reported period, any further columns are numeric metrics
    "ticker_fundamental_data": LogType(
        "fundamentals",
        ("period_end", "announcement_date"),
        (),
        ("period_end", "announcement_date"),
        True,
        ("period_end", "announcement_date"),
    ),
    # label: the ticker. Added type: splits, dividends and delisting values cannot be recovered
    # from raw prices alone, and the engine needs them to keep accounts right (E7). Two dividends
    # on one ex-date (a regular and a special) are both paid: the builder adds them up.
    "corporate_actions": LogType(
        "corporate_actions", ("date", "action", "value"), ("value",), ("date",)
    ),
    # label: the market (the simulated vendor's index name). Added type: a simulated market's own
    # episodes (bear market, crash, recovery, correction, high volatility) as it planted them, so
    # that the tear sheet can name them on simulated data instead of real-world events.
    "market_regimes": LogType(
        "regimes", ("start", "end", "regime", "market_return"), ("market_return",), ("start", "end")
    ),
}
DATA_TYPES = tuple(LOG_TYPES)


@dataclasses.dataclass(frozen=True)
class Table:
    """A dataset table: its key, whether a newer log replaces the whole key group, row order and
    standard columns (so an empty table reads like a full one); `partition`, where set, is the
    date column whose calendar year cuts the table into one file per year (dataset format 2),
    so that a new day rewrites one year's file and the other years are shared between versions.
    The columns before it in `sort` are dictionary-encoded, so the whole table's order comes back
    from the parts by one stable sort on their codes."""

    keys: tuple[str, ...]
    replace_group: bool
    sort: tuple[str, ...]
    columns: dict[str, str]
    partition: str = ""


_DATE, _F, _O = "datetime64[ns]", "float64", "object"
TABLES: dict[str, Table] = {
    "market": Table(
        ("source", "ticker", "date"),
        False,
        ("source", "ticker", "date"),
        {"source": _O, "ticker": _O, "date": _DATE, **dict.fromkeys(MARKET_FIELDS, _F)},
        partition="date",
    ),
    "fundamentals": Table(
        ("source", "ticker", "period_end", "announcement_date", "metric"),
        False,
        ("source", "ticker", "metric", "period_end", "announcement_date"),
        {
            "source": _O,
            "ticker": _O,
            "period_end": _DATE,
            "announcement_date": _DATE,
            "metric": _O,
            "value": _F,
        },
    ),
    "constituents": Table(
        ("source", "index", "date"),
        True,
        ("source", "index", "date", "ticker"),
        {"source": _O, "index": _O, "date": _DATE, "ticker": _O, "weight": _F},
    ),
    "metadata": Table(
        ("source", "ticker"),
        False,
        ("source", "ticker"),
        {"source": _O, "ticker": _O, "name": _O, "sector": _O},
    ),
    "corporate_actions": Table(
        ("source", "ticker", "date", "action"),
        False,
        ("source", "ticker", "date", "action"),
        {"source": _O, "ticker": _O, "date": _DATE, "action": _O, "value": _F},
    ),
    "regimes": Table(
        ("source",),
        True,
        ("source", "start", "regime"),
        {"source": _O, "start": _DATE, "end": _DATE, "regime": _O, "market_return": _F},
    ),
}
# text columns the builder stores dictionary-encoded
CATEGORICAL = ("source", "ticker", "metric", "index", "action")

# What a source's fundamentals are, where it is known that they are not as first reported:
# Compustat's standard comp.fundq keeps only each quarter's latest (restated) values, which the
# WRDS vendor dates at the quarter's first report (rdq). Such figures carry look-ahead: a
# quarter restated a year later is seen as restated from its first report on.
RESTATED_FUNDAMENTALS = {
    "wrds": "as restated: Compustat's standard fundq keeps only each quarter's latest values, "
    "dated here at its first report (rdq), so a later restatement is seen from that date on "
    "(look-ahead that can flatter fundamental strategies)",
    "datastream": "as restated: Worldscope's standard items keep each period's latest values, "
    "dated at ds_report_date_field's date where asked, else ds_report_lag_days after the "
    "period's end",
}

# What the Bloomberg vendor's metadata says (column 'fundamentals') when the terminal gave no
# fundamentals with FILING_STATUS = OR but gave them without it: the latest values instead.
BLOOMBERG_RESTATED = (
    "as restated: the terminal refused FILING_STATUS = OR (as first reported), so its default, "
    "the latest (restated) values, are dated at each period's announcement"
)

# What a source's metadata says (column 'fundamentals') when its fundamentals are point in time
# after all (the WRDS vendor with wrds_fundamentals = "snapshot"): then they are not marked
# restated, and restated_lag_days does not apply.
POINT_IN_TIME = (
    "point in time: Compustat Snapshot's versions of each quarter, each public from the later of "
    "its report date and the day the snapshot first held it"
)
