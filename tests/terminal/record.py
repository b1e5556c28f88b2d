"""Build a terminal recording from the simulated market, in the shapes Bloomberg answers with.

No Bloomberg terminal is reachable from CI, so the recorded terminal (tests/terminal/blpapi)
replays this: the simulated market's members, prices, fundamentals, dividends and metadata as
refdata would return them for INDX_MWEIGHT_HIST (per END_DT), bdh (DAILY and QUARTERLY) and bdp.
Index members are named "<TICKER> US" and securities "<TICKER> US Equity".

    python tests/terminal/record.py OUT.json [n_tickers index_size start end seed]
"""

from __future__ import annotations

import datetime as dt
import json
import sys

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


def make_recording(settings: simulated.SimulationSettings) -> dict:
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
        ref.setdefault(INDEX, {})[f"INDX_MWEIGHT_HIST|END_DT={day:%Y%m%d}"] = [
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
            }
        )
    for ticker, rows in market.prices.groupby("ticker"):
        daily = hist.setdefault(member[ticker] + " Equity", {}).setdefault("DAILY", {})
        dates_ = [_iso(d) for d in rows["date"]]
        for col, field in MARKET.items():
            daily[field] = dict(zip(dates_, rows[col].astype(float).round(6), strict=True))
    for ticker, rows in market.fundamentals.groupby("ticker"):
        q = hist.setdefault(member[ticker] + " Equity", {}).setdefault("QUARTERLY", {})
        periods = [_iso(d) for d in rows["period_end"]]
        q["ANNOUNCEMENT_DT"] = dict(zip(periods, map(_iso, rows["announcement_date"]), strict=True))
        for metric, field in BBG_FUNDAMENTAL_FIELDS.items():
            q[field] = dict(zip(periods, rows[metric].astype(float), strict=True))
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
    return {"reference": ref, "historical": hist}


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
