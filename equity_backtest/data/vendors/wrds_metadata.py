"""The WRDS vendor's metadata (D9): one row per PERMNO with the latest name, ticker, exchange
and sector, and the history of each (ticker, name, exchange, and the GICS sector where the
account can read Compustat's history), from CRSP's name tables and Compustat through the CCM
link; sectors from SIC divisions without Compustat."""

from __future__ import annotations

import logging

import pandas as pd

from ...config import Parameters
from ..vocabulary import POINT_IN_TIME
from .querylog import chunks
from .wrds_sql import GICS, GICS_HISTORY, GICS_HISTORY_TABLE

log = logging.getLogger(__name__)

# Compustat's GICS sector codes (comp.company.gsector)
GICS_SECTORS = {
    "10": "Energy", "15": "Materials", "20": "Industrials", "25": "Consumer Discretionary",
    "30": "Consumer Staples", "35": "Health Care", "40": "Financials",
    "45": "Information Technology", "50": "Communication Services", "55": "Utilities",
    "60": "Real Estate",
}  # fmt: skip
# SIC divisions (first SIC code of each), for sector = "sic"
SIC_DIVISIONS = (
    (100, "Agriculture, Forestry and Fishing"), (1000, "Mining"), (1500, "Construction"),
    (2000, "Manufacturing"), (4000, "Transportation, Communications and Utilities"),
    (5000, "Wholesale Trade"), (5200, "Retail Trade"),
    (6000, "Finance, Insurance and Real Estate"), (7000, "Services"),
    (9100, "Public Administration"), (9900, "Nonclassifiable"),
)  # fmt: skip


def metadata(db, sql: dict, params: Parameters, permnos: list[int]) -> pd.DataFrame:
    """One row per PERMNO: the latest name, ticker, exchange and sector, and the history of the
    ticker, the name and the exchange."""
    parts = [db.ask("names", sql["names"], permnos=g) for g in chunks(permnos, 2000)]
    names = pd.concat(parts, ignore_index=True).sort_values(["permno", "name_start"])
    names["permno"] = names["permno"].astype("int64")
    names = _without_delisting_records(names)
    latest = names.groupby("permno").last()
    history = {c: _history(names, c) for c in ("symbol", "name", "exchange")}
    sectors = pd.Series(dtype=object)
    if params.wrds_sector == "gics":
        parts = [db.ask("GICS sectors", GICS, permnos=g) for g in chunks(permnos, 2000)]
        gics = pd.concat(parts, ignore_index=True)
        codes = gics["gsector"].astype("string").str.strip().str[:2]
        sectors = pd.Series(
            codes.map(GICS_SECTORS).to_numpy(), index=gics["permno"].astype("int64")
        )
        if db.can_read(GICS_HISTORY_TABLE):
            history["sector"] = _sector_history(
                pd.concat(
                    [
                        db.ask("GICS history", GICS_HISTORY, permnos=g)
                        for g in chunks(permnos, 2000)
                    ],
                    ignore_index=True,
                )  # fmt: skip
            )
        else:
            log.info("no access to %s: each company's GICS sector is today's over all history",
                     GICS_HISTORY_TABLE)  # fmt: skip
    rows = []
    for p in permnos:
        row = latest.loc[p] if p in latest.index else None
        sic = None if row is None or pd.isna(row["siccd"]) else int(row["siccd"])
        sector = sectors.get(p) if params.wrds_sector == "gics" else _sic_division(sic)
        rows.append(
            {
                "ticker": str(p),
                "name": None if row is None else row["name"],
                "sector": None if sector is None or pd.isna(sector) else sector,
                "symbol": None if row is None else row["symbol"],
                "exchange": None if row is None else row["exchange"],
                "sic": sic,
                "symbol_history": history["symbol"].get(p),
                "name_history": history["name"].get(p),
                "exchange_history": history["exchange"].get(p),
                **({"sector_history": history["sector"].get(p)} if "sector" in history else {}),
                **(
                    {"fundamentals": POINT_IN_TIME}
                    if params.wrds_fundamentals == "snapshot"
                    else {}
                ),
            }
        )
    return pd.DataFrame(rows)


def _without_delisting_records(names: pd.DataFrame) -> pd.DataFrame:
    """Drop CIZ's one-day record that closes a delisted security's history (its exchange is a
    code for 'delisted', not where it was listed), so the latest name row is the last real one;
    a security with nothing else keeps it."""
    start = pd.to_datetime(names["name_start"])
    end = pd.to_datetime(names["name_end"])
    last = ~names["permno"].duplicated(keep="last").to_numpy()
    alone = names["permno"].map(names["permno"].value_counts()).to_numpy() == 1
    one_day = ((end - start) <= pd.Timedelta(days=1)).to_numpy()
    return names[~(last & one_day & ~alone)].reset_index(drop=True)


def _history(names: pd.DataFrame, column: str) -> pd.Series:
    """Per PERMNO, "YYYY-MM-DD value; ..." with each change of `column` from the date it took
    effect (the prompts read names as of their date from it)."""

    def one(group: pd.DataFrame) -> str:
        parts, last = [], None
        for start, value in zip(group["name_start"], group[column], strict=True):
            value = None if pd.isna(value) else str(value).replace(";", ",").strip()
            if value and value != last:
                parts.append(f"{pd.Timestamp(start):%Y-%m-%d} {value}")
                last = value
        return "; ".join(parts)

    return names.groupby("permno").apply(one, include_groups=False)


def _sector_history(rows: pd.DataFrame) -> pd.Series:
    """comp.co_hgic rows -> per PERMNO "YYYY-MM-DD Sector; ..." (the view and the prompts read
    the sector as of their date from it)."""
    if rows.empty:
        return pd.Series(dtype=object)
    frame = pd.DataFrame(
        {
            "permno": rows["permno"].astype("int64"),
            "name_start": pd.to_datetime(rows["indfrom"]),
            "sector": rows["gsector"].astype("string").str.strip().str[:2].map(GICS_SECTORS),
        }
    ).sort_values(["permno", "name_start"], kind="stable")
    return _history(frame, "sector")


def _sic_division(sic: int | None) -> str | None:
    if sic is None or sic < SIC_DIVISIONS[0][0]:
        return None
    return [name for first, name in SIC_DIVISIONS if sic >= first][-1]
