"""Build a terminal recording from the simulated market, in the shapes Bloomberg answers with.

No Bloomberg terminal is reachable from CI, so the recorded terminal (tests/terminal/blpapi)
replays this: the simulated market's members, prices, fundamentals, dividends and metadata as
refdata would return them for INDX_MWEIGHT_HIST (per END_DATE_OVERRIDE), bdh (DAILY and
QUARTERLY, with restated values where FILING_STATUS = OR is not asked) and bdp. With quirks, what
a terminal has beyond the simulated market: a restated quarter, capital changes other than
splits and cash (a special dividend, a stock dividend, a spin-off with its price adjustment
factor, a rights issue), a company
whose fiscal quarters end a month before calendar quarters, a dead member whose ticker now names
a company listed later, and a member whose ticker no longer resolves.
Index members are named "<TICKER> US" and securities "<TICKER> US Equity".

    python tests/terminal/record.py OUT.json [n_tickers index_size start end seed]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys

import numpy as np
import pandas as pd

from equity_backtest.config import Parameters
from equity_backtest.data.vendors import simulated
from equity_backtest.data.vendors.bloomberg_fields import (
    FUNDAMENTAL_FIELDS as BBG_FUNDAMENTAL_FIELDS,
)

INDEX = "SIM Index"
MARKET = Parameters().bbg_market_fields  # our column -> Bloomberg field


def _iso(value) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d}"


def make_recording(
    settings: simulated.SimulationSettings, quirks: bool = False, refuses_original: bool = False
) -> dict:
    """The recording; `refuses_original`: a terminal that refuses FILING_STATUS = OR."""
    market = simulated.simulate(settings)
    ref: dict[str, dict] = {}
    hist: dict[str, dict] = {}
    member = {t: f"{t} US" for t in market.metadata["ticker"]}

    lists = {d: g for d, g in market.constituents.groupby("date")}
    dates = sorted(lists)
    for day in pd.date_range(settings.start, settings.end, freq="ME").append(
        pd.DatetimeIndex([pd.Timestamp(settings.end)])
    ):
        known = [d for d in dates if d <= day]
        if not known:
            continue
        rows = lists[known[-1]]
        ref.setdefault(INDEX, {})[f"INDX_MWEIGHT_HIST|END_DATE_OVERRIDE={day:%Y%m%d}"] = [
            {"Index Member": member[t], "Percent Weight": round(float(w) * 100, 6)}
            for t, w in zip(rows["ticker"], rows["weight"], strict=True)
        ]

    for row in market.metadata.itertuples():
        ref.setdefault(member[row.ticker] + " Equity", {}).update(
            {
                "NAME": row.name,
                "GICS_SECTOR_NAME": row.sector,
                "ID_ISIN": row.isin,
                "CRNCY": row.currency,
                "EQY_INIT_PO_DT": _iso(row.listing_date),
                "ID_MIC_PRIM_EXCH": row.exchange,
                "ID_BB_GLOBAL": "BBG" + hashlib.sha256(row.ticker.encode()).hexdigest()[:9].upper(),
            }
        )
    gone = market.corporate_actions[market.corporate_actions["action"] == "delisting"]
    for ticker, day in zip(gone["ticker"], gone["date"], strict=True):
        ref.setdefault(member[ticker] + " Equity", {})["INACTIVE_DATE"] = _iso(day)
    for ticker, rows in market.prices.groupby("ticker"):
        # the latest price (bdp LAST_PRICE, a live account's intraday heartbeat): the last close
        ref.setdefault(member[ticker] + " Equity", {})["LAST_PRICE"] = float(rows["close"].iloc[-1])
        daily = hist.setdefault(member[ticker] + " Equity", {}).setdefault("DAILY", {})
        dates_ = [_iso(d) for d in rows["date"]]
        for col, field in MARKET.items():
            daily[field] = dict(zip(dates_, rows[col].astype(float).round(6), strict=True))
    for ticker, rows in market.fundamentals.groupby("ticker"):
        q = hist.setdefault(member[ticker] + " Equity", {}).setdefault("QUARTERLY", {})
        periods = [_iso(d) for d in rows["period_end"]]
        q["ANNOUNCEMENT_DT"] = dict(zip(periods, map(_iso, rows["announcement_date"]), strict=True))
        for metric, field in BBG_FUNDAMENTAL_FIELDS.items():  # in millions, as Bloomberg gives them
            q[field] = dict(zip(periods, rows[metric].astype(float) / 1e6, strict=True))
    for ticker, rows in market.corporate_actions.groupby("ticker"):
        paid = rows[rows["action"] != "delisting"]
        ref.setdefault(member[ticker] + " Equity", {})["DVD_HIST_ALL"] = [
            {
                "Declared Date": _iso(d - pd.Timedelta(days=20)),
                "Ex-Date": _iso(d),
                "Dividend Amount": float(v),
                "Dividend Type": "Stock Split" if a == "split" else "Regular Cash",
            }
            for d, a, v in zip(paid["date"], paid["action"], paid["value"], strict=True)
        ]
    if quirks:
        _add_quirks(market, ref, hist, member)
    refused = ["FILING_STATUS"] if refuses_original else []
    return {"reference": ref, "historical": hist, "refused_overrides": refused}


def _add_quirks(market, ref: dict, hist: dict, member: dict) -> None:
    members = sorted(set(market.constituents["ticker"]))
    fund = market.fundamentals.sort_values(["ticker", "period_end"])
    # a restated quarter: the terminal's default (latest) value is 10% above the original
    first = fund[fund["ticker"] == members[0]].iloc[4]
    sec = member[members[0]] + " Equity"
    field = BBG_FUNDAMENTAL_FIELDS["revenue"]
    hist[sec].setdefault("QUARTERLY_RESTATED", {})[field] = {
        _iso(first["period_end"]): float(first["revenue"]) * 1.1 / 1e6
    }
    # capital changes beyond splits and cash, on a member's days
    sec = member[members[1]] + " Equity"
    days = market.prices[market.prices["ticker"] == members[1]]["date"]
    extra = [("Special Cash", 1.0, 100), ("Stock Dividend", 0.05, 200), ("Spinoff", 0.3, 300),
             ("Rights Issue", 0.1, 400)]  # fmt: skip
    ref[sec]["DVD_HIST_ALL"] = ref[sec].get("DVD_HIST_ALL", []) + [
        {"Declared Date": _iso(days.iloc[k] - pd.Timedelta(days=20)), "Ex-Date": _iso(days.iloc[k]),
         "Dividend Amount": amount, "Dividend Type": kind}
        for kind, amount, k in extra
    ]  # fmt: skip
    # the factors Bloomberg adjusts earlier prices by (EQY_DVD_ADJUST_FACT): a split's ratio
    # divides them; the spin-off's factor multiplies them by 0.92 (its shares worth 8% of the
    # close before the ex-date)
    ref[sec]["EQY_DVD_ADJUST_FACT"] = [
        {"Adjustment Date": r["Ex-Date"],
         "Adjustment Factor": 0.92 if r["Dividend Type"] == "Spinoff" else
         (1 + r["Dividend Amount"] if r["Dividend Type"] == "Stock Dividend" else r["Dividend Amount"]),
         "Adjustment Factor Operator Type": 2 if r["Dividend Type"] == "Spinoff" else 1,
         "Adjustment Factor Flag": 1 if r["Dividend Type"] == "Spinoff" else 3}
        for r in ref[sec]["DVD_HIST_ALL"]
        if r["Dividend Type"] in ("Stock Split", "Stock Dividend", "Spinoff")
    ]  # fmt: skip
    # a member quoted in euros: its dividends in EUR (prices come in the asked currency), and
    # the EURUSD rate the vendor converts them with
    days = pd.DatetimeIndex(sorted(market.prices["date"].unique()))
    rate = pd.Series(1.1 + 0.05 * np.sin(np.arange(len(days)) / 40), index=days)
    hist["EURUSD Curncy"] = {"DAILY": {"PX_LAST": {_iso(d): float(r) for d, r in rate.items()}}}
    sec = member[members[3]] + " Equity"
    ref[sec]["CRNCY"] = "EUR"
    for row in ref[sec].get("DVD_HIST_ALL", []):
        if row["Dividend Type"] == "Regular Cash":
            row["Dividend Amount"] = row["Dividend Amount"] / float(
                rate[pd.Timestamp(row["Ex-Date"])]
            )
    # a member whose fiscal year ends in February: its quarters end a month before calendar
    # quarters (the simulated market's period ends, moved back a month), and a terminal asked
    # without periodicityAdjustment = FISCAL dates them at the calendar quarter ends
    sec = member[members[4]] + " Equity"
    quarters = hist[sec]["QUARTERLY"]
    fiscal = {
        d: _iso(pd.Timestamp(d) - pd.offsets.MonthEnd(1)) for d in quarters["ANNOUNCEMENT_DT"]
    }
    hist[sec]["QUARTERLY"] = {f: {fiscal[d]: x for d, x in v.items()} for f, v in quarters.items()}
    hist[sec]["CALENDAR_DATES"] = {f: d for d, f in fiscal.items()}
    # a reused ticker: the first member that died, whose ticker now names a company listed
    # 90 days after that death (its own FIGI, IPO date and prices): the lists still name the
    # ticker while the dead company was a member
    dead = market.corporate_actions[market.corporate_actions["action"] == "delisting"]
    dead = dead[dead["ticker"].isin(members[5:])].sort_values("date").iloc[0]
    sec = member[dead["ticker"]] + " Equity"
    later = days[days > dead["date"] + pd.Timedelta(days=90)]
    price = 20.0 * np.exp(0.0005 * np.arange(len(later)))
    series = {"PX_OPEN": price, "PX_HIGH": price * 1.01, "PX_LOW": price * 0.99, "PX_LAST": price,
              "PX_VOLUME": np.full(len(later), 1e5), "CUR_MKT_CAP": price * 1e7}  # fmt: skip
    hist[sec] = {"DAILY": {f: {_iso(d): float(v) for d, v in zip(later, values, strict=True)}
                           for f, values in series.items()}}  # fmt: skip
    for gone_field in ("INACTIVE_DATE", "DVD_HIST_ALL"):
        ref[sec].pop(gone_field, None)
    ref[sec].update(NAME="Newco Inc", ID_BB_GLOBAL="BBGNEWCO0001", EQY_INIT_PO_DT=_iso(later[0]))
    # a member whose ticker no longer resolves: the terminal knows nothing of it
    gone = member[members[2]] + " Equity"
    ref.pop(gone, None)
    hist.pop(gone, None)


def main(argv: list[str]) -> None:
    out = argv[0]
    n, size, start, end, seed = (argv[1:] + ["40", "15", "2019-01-01", "2020-12-31", "7"])[:5]
    settings = simulated.SimulationSettings(
        int(n), int(size), dt.date.fromisoformat(start), dt.date.fromisoformat(end), int(seed)
    )
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(make_recording(settings), fh)


if __name__ == "__main__":
    main(sys.argv[1:])
