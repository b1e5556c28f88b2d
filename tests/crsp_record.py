"""Fill a PostgreSQL database with the simulated market in CRSP's and Compustat's shapes.

No WRDS server is reachable from CI, so the WRDS vendor's tests point the real `wrds` package at a
local PostgreSQL holding the simulated market as WRDS serves CRSP (the CIZ tables crsp.dsf_v2,
msf_v2, dsp500list_v2, stksecurityinfohist, stkdistributions, stkdelists, and the legacy
crsp.dsf, msf, dsp500list, stocknames, dsedist, dsedelist), the CCM link table and Compustat
(comp.fundq in $ millions with year-to-date cash-flow items, comp.company's GICS sector).

PERMNO = 10001 + the ticker's position in the simulated metadata; gvkey = PERMNO + 100000. On top
of the simulated market, the tables hold what real ones do and the vendor must handle:
  - bid/ask-average closes (legacy: a negative price; CIZ: dlyprcflg 'BA') on every 37th row;
  - CIZ's extra daily row after a delisting (dlydelflg 'Y') that is not a trading day's price;
  - a special dividend (legacy distcd 1272, CIZ disordinaryflg 'N') on top of a regular one;
  - a merger distribution (facpr -1) that is neither a dividend nor a split;
  - one delisting with only a (negative) delisting price, the others with a delisting return;
  - a ticker change (two name rows for one PERMNO) and a non-primary CCM link to a decoy gvkey;
  - a restated quarter (a second row, later rdq, revenue x 1.1) and a quarter without rdq.
EXTRAS names the rows concerned so the tests can check each.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from equity_backtest.data.vendors import simulated
from equity_backtest.data.vendors.simulated import tables as sim_tables
from equity_backtest.data.vendors.wrds import GICS_SECTORS

SETTINGS = simulated.SimulationSettings(40, 12, dt.date(2010, 1, 1), dt.date(2012, 12, 31), 2)
INDEX = "SP500"
GICS_CODE = {name: code for code, name in GICS_SECTORS.items()}


def permnos(market: simulated.SimulatedMarket) -> dict[str, int]:
    return {t: 10001 + k for k, t in enumerate(market.metadata["ticker"])}


def _spells(constituents: pd.DataFrame, end: dt.date) -> pd.DataFrame:
    """Monthly member lists -> membership spells (start, end; None while still a member)."""
    members = {pd.Timestamp(d): set(g["ticker"]) for d, g in constituents.groupby("date")}
    rows, open_since = [], {}
    for day in sorted(members):
        now = members[day]
        for t in now - set(open_since):
            open_since[t] = day
        for t in set(open_since) - now:
            rows.append((t, open_since.pop(t), pd.Timestamp(day) - pd.Timedelta(days=1)))
    rows += [(t, since, None) for t, since in open_since.items()]
    return pd.DataFrame(rows, columns=["ticker", "spell_start", "spell_end"])


def tables(
    settings: simulated.SimulationSettings = SETTINGS, quirks: bool = True
) -> tuple[dict, dict]:
    """{(schema, table): frame} and EXTRAS (what was added on top of the simulated market).
    Without quirks, nothing that changes the data is added (no special dividend, restatement or
    missing rdq): the vendor must then give the simulated market's own dataset."""
    market = simulated.simulate(settings)
    prices = sim_tables._quoted(market.prices)
    fund = sim_tables._quoted(market.fundamentals)
    actions = sim_tables._quoted(market.corporate_actions)
    ids = permnos(market)
    member = set(market.constituents["ticker"])  # quirks go to index members (the ones asked)
    out: dict[tuple[str, str], pd.DataFrame] = {}
    extras: dict[str, object] = {}

    spells = _spells(market.constituents, settings.end)
    spells.insert(0, "permno", spells.pop("ticker").map(ids))
    out["crsp", "dsp500list_v2"] = spells.rename(
        columns={"spell_start": "mbrstartdt", "spell_end": "mbrenddt"}
    )
    out["crsp", "dsp500list"] = spells.rename(
        columns={"spell_start": "start", "spell_end": "ending"}
    ).fillna({"ending": pd.Timestamp(settings.end)})

    px = prices.assign(permno=prices["ticker"].map(ids))
    bid_ask = np.arange(len(px)) % 37 == 5
    extras["bid_ask_rows"] = px.loc[bid_ask, ["ticker", "date"]].reset_index(drop=True)
    shrout = px["market_cap"] / px["close"] / 1000
    ciz = pd.DataFrame(
        {
            "permno": px["permno"], "dlycaldt": px["date"], "dlyopen": px["open"],
            "dlyhigh": px["high"], "dlylow": px["low"], "dlyprc": px["close"],
            "dlyprcflg": np.where(bid_ask, "BA", "TR"), "dlyvol": px["volume"],
            "dlycap": px["market_cap"] / 1000, "shrout": shrout, "dlydelflg": "N",
        }
    )  # fmt: skip
    delists = actions[actions["action"] == "delisting"]
    extra_rows = pd.DataFrame(
        {
            "permno": delists["ticker"].map(ids), "dlycaldt": delists["date"],
            "dlyprc": delists["value"], "dlyprcflg": "TR", "dlydelflg": "Y",
        }
    )  # fmt: skip
    out["crsp", "dsf_v2"] = pd.concat([ciz, extra_rows], ignore_index=True)
    out["crsp", "dsf"] = pd.DataFrame(
        {
            "permno": px["permno"], "date": px["date"], "openprc": px["open"],
            "askhi": px["high"], "bidlo": px["low"],
            "prc": np.where(bid_ask, -px["close"], px["close"]), "vol": px["volume"],
            "shrout": shrout,
        }
    )  # fmt: skip
    if quirks:  # CRSP's missing-volume code (a volume too large to store), on a member's day
        k = int(np.flatnonzero(px["ticker"].isin(member).to_numpy())[10])
        out["crsp", "dsf"].loc[k, "vol"] = -99.0
        extras["missing_volume"] = (px["ticker"].iloc[k], px["date"].iloc[k])
    month = px["date"].dt.to_period("M")
    last = px.groupby(["permno", month])["date"].transform("max") == px["date"]
    monthly = px[last].assign(vol=px.groupby(["permno", month])["volume"].transform("sum")[last])
    out["crsp", "msf_v2"] = pd.DataFrame(
        {
            "permno": monthly["permno"], "mthcaldt": monthly["date"], "mthprc": monthly["close"],
            "mthprcflg": "TR", "mthvol": monthly["vol"], "mthcap": monthly["market_cap"] / 1000,
            "shrout": monthly["market_cap"] / monthly["close"] / 1000,
        }
    )  # fmt: skip
    out["crsp", "msf"] = pd.DataFrame(
        {
            "permno": monthly["permno"], "date": monthly["date"], "askhi": monthly["high"],
            "bidlo": monthly["low"], "prc": monthly["close"], "vol": monthly["vol"] / 100,
            "shrout": monthly["market_cap"] / monthly["close"] / 1000,
        }
    )  # fmt: skip

    meta = market.metadata.assign(permno=market.metadata["ticker"].map(ids))
    names = pd.DataFrame(
        {
            "permno": meta["permno"], "start": pd.Timestamp("1990-01-01"),
            "end": pd.Timestamp("2099-12-31"), "ticker": meta["ticker"], "name": meta["name"],
            "siccd": 3571,
        }
    )  # fmt: skip
    k = int(np.flatnonzero(names["ticker"].isin(member))[0])
    renamed = names.iloc[[k]].assign(
        ticker="OLD" + names["ticker"].iloc[k], end=pd.Timestamp("2005-12-31")
    )
    names.loc[names.index[k], "start"] = pd.Timestamp("2006-01-01")
    names = pd.concat([renamed, names], ignore_index=True)
    extras["renamed"] = (names["ticker"].iloc[k + 1], "OLD" + names["ticker"].iloc[k + 1])
    ciz_names = names.rename(
        columns={"start": "secinfostartdt", "end": "secinfoenddt", "name": "issuernm"}
    ).assign(primaryexch="N")
    gone = delists[delists["ticker"].isin(member)]
    if quirks and len(gone):  # CIZ closes a delisted security's history with a one-day record
        t, day = gone["ticker"].iloc[0], gone["date"].iloc[0]
        own = ciz_names[ciz_names["ticker"] == t]
        ciz_names.loc[own.index[-1], "secinfoenddt"] = day - pd.Timedelta(days=1)
        record = own.iloc[[-1]].assign(secinfostartdt=day, secinfoenddt=day, primaryexch="X")
        ciz_names = pd.concat([ciz_names, record], ignore_index=True)
        extras["delisting_record"] = t
    out["crsp", "stksecurityinfohist"] = ciz_names
    out["crsp", "stocknames"] = names.rename(
        columns={"start": "namedt", "end": "nameenddt", "name": "comnam"}
    ).assign(exchcd=1)

    paid = actions[actions["action"] != "delisting"].assign(permno=lambda f: f["ticker"].map(ids))
    split = (paid["action"] == "split").to_numpy()
    cash = paid[~split & paid["ticker"].isin(member).to_numpy()]
    # cash beyond the ordinary dividends, each on a day that has one (the builder sums a day's
    # cash): a special dividend, a return of capital and a capital-gain distribution (CIZ's SD,
    # ROC and CG), coded in the legacy file as a special dividend (1272), a partial liquidation
    # (2232) and a second ordinary cash row (1232); all three are paid as cash
    kinds = (("SD", 1272.0, 1.25), ("ROC", 2232.0, 2.0), ("CG", 1232.0, 0.4))
    candidates = cash.iloc[[3, 5, 6]].assign(value=[k[2] for k in kinds])
    extras["special_dividend"] = (candidates["ticker"].iloc[0], candidates["date"].iloc[0], 1.25)
    more = candidates.iloc[: 3 * int(quirks)]
    extras["extra_cash"] = list(zip(more["ticker"], more["date"], more["value"], strict=True))
    merger = cash.iloc[[4]].assign(value=0.0)
    dist_ciz = pd.DataFrame(
        {
            "permno": paid["permno"], "disexdt": paid["date"],
            "distype": np.where(split, "FRS", "CD"), "disordinaryflg": "Y",
            "disdivamt": np.where(split, 0.0, paid["value"]),
            "disfacpr": np.where(split, paid["value"] - 1, 0.0),
        }
    )  # fmt: skip
    extra_ciz = more[["permno"]].assign(disexdt=more["date"], distype=[k[0] for k in kinds][: len(more)],
                                        disordinaryflg="N", disdivamt=more["value"], disfacpr=0.0)  # fmt: skip
    # the merger: the share is exchanged away (factor -1); its delisting return pays for it
    merger_ciz = merger[["permno"]].assign(disexdt=merger["date"], distype="FRS",
                                           disordinaryflg="N", disdivamt=0.0, disfacpr=-1.0)  # fmt: skip
    out["crsp", "stkdistributions"] = pd.concat(
        [dist_ciz, extra_ciz, merger_ciz], ignore_index=True
    )
    codes = np.where(dist_ciz["distype"] == "FRS", 5523.0, 1232.0)
    dsedist = pd.DataFrame(
        {
            "permno": pd.concat([dist_ciz["permno"], extra_ciz["permno"], merger_ciz["permno"]]),
            "exdt": pd.concat([dist_ciz["disexdt"], extra_ciz["disexdt"], merger_ciz["disexdt"]]),
            # DOUBLE PRECISION, as WRDS stores legacy CRSP numerics (5523 / 1000 is 5.523 there,
            # not 5: an integer column here once hid a query that lost every split)
            "distcd": np.concatenate([codes, [k[1] for k in kinds][: len(more)], [3763.0]]),
            "divamt": pd.concat(
                [dist_ciz["disdivamt"], extra_ciz["disdivamt"], merger_ciz["disdivamt"]]
            ),  # fmt: skip
            "facpr": pd.concat(
                [dist_ciz["disfacpr"], extra_ciz["disfacpr"], merger_ciz["disfacpr"]]
            ),  # fmt: skip
        }
    )
    # legacy rows the engine logs but does not apply: rights with no value (4xxx) and a notice
    # of new shares issued (6xxx), whose factor is no split for holders
    if quirks:
        rights = cash.iloc[[7]]
        notice = cash.iloc[[8]]
        dsedist = pd.concat([dsedist, pd.DataFrame({
            "permno": [rights["permno"].iloc[0], notice["permno"].iloc[0]],
            "exdt": [rights["date"].iloc[0] + pd.Timedelta(days=1), notice["date"].iloc[0]],
            "distcd": [4232.0, 6122.0], "divamt": [0.0, 0.0], "facpr": [0.0, 0.05],
        })], ignore_index=True)  # fmt: skip
        extras["legacy_unapplied"] = {"rights": 1, "notice": 1}
    out["crsp", "dsedist"] = dsedist.reset_index(drop=True)

    rows = []
    for r in delists.itertuples(index=False):
        before = px[(px["ticker"] == r.ticker) & (px["date"] < r.date)]
        last_day, close = before["date"].iloc[-1], before["close"].iloc[-1]
        rows.append((ids[r.ticker], last_day, r.value / close - 1, r.value))
    dl = pd.DataFrame(rows, columns=["permno", "last_day", "ret", "price"])
    ciz_dl = dl.rename(columns={"last_day": "delistingdt", "ret": "delret", "price": "delnextprc"})[
        ["permno", "delistingdt", "delret", "delnextprc"]
    ]
    if quirks:  # a delisting without a return: its next price is the value
        valued = (ciz_dl["delnextprc"] > 0).to_numpy()
        of_member = ciz_dl["permno"].isin([ids[t] for t in member]).to_numpy() & valued
        k = int(np.flatnonzero(of_member if of_member.any() else valued)[-1])
        ciz_dl.loc[k, "delret"] = np.nan
        extras["price_only_delisting_ciz"] = int(ciz_dl.loc[k, "permno"])
    out["crsp", "stkdelists"] = ciz_dl
    legacy = dl.rename(columns={"last_day": "dlstdt", "ret": "dlret", "price": "dlprc"})
    # (a member's delisting with a value: a price of 0 would be no delisting price at all)
    valued = legacy["dlprc"] > 0
    members_valued = np.flatnonzero(legacy["permno"].isin([ids[t] for t in member]) & valued)
    k = int(members_valued[0] if len(members_valued) else np.flatnonzero(valued)[0])
    legacy.loc[k, "dlret"], legacy.loc[k, "dlprc"] = np.nan, -legacy.loc[k, "dlprc"]
    extras["price_only_delisting"] = int(legacy.loc[k, "permno"])
    # a real delisting code (a merger, 231, or a bankruptcy, 574), and, as in the real table, a
    # row for every security still active at the data's end: code 100, dated its last day
    legacy["dlstcd"] = np.where(legacy["dlprc"].abs() > 0, 231.0, 574.0)
    alive = (
        px[~px["permno"].isin(legacy["permno"])]
        .groupby("permno")
        .agg(dlstdt=("date", "max"), dlprc=("close", "last"))
        .reset_index()
    )
    active = alive.assign(dlret=0.0, dlstcd=100.0)
    extras["active_permnos"] = active["permno"].tolist()
    out["crsp", "dsedelist"] = pd.concat([legacy, active[legacy.columns]], ignore_index=True)

    gvkey = {p: f"{p + 100000:06d}" for p in ids.values()}
    links = pd.DataFrame(
        {
            "gvkey": [gvkey[p] for p in meta["permno"]], "lpermno": meta["permno"],
            "linktype": "LC", "linkprim": "P", "linkdt": pd.Timestamp("1990-01-01"),
            "linkenddt": pd.NaT,
        }
    )  # fmt: skip
    decoy = links.iloc[[0]].assign(gvkey="999999", linktype="NR")
    out["crsp", "ccmxpf_lnkhist"] = pd.concat([links, decoy], ignore_index=True)
    out["comp", "company"] = pd.DataFrame(
        {
            "gvkey": [gvkey[p] for p in meta["permno"]] + ["999999"],
            "gsector": [GICS_CODE[s] for s in meta["sector"]] + ["10"],
        }
    )
    # Compustat's GICS history: today's sector since 1999 for each company, and one member that
    # was in another sector until mid-2011
    hgic = out["comp", "company"].assign(indfrom=pd.Timestamp("1999-01-01"), indthru=pd.NaT)
    if quirks:
        k = int(np.flatnonzero(meta["ticker"].isin(member).to_numpy()
                               & (meta["sector"] != "Industrials").to_numpy())[0])  # fmt: skip
        moved = gvkey[meta["permno"].iloc[k]]
        row = int(np.flatnonzero((hgic["gvkey"] == moved).to_numpy())[0])
        before = hgic.iloc[[row]].assign(gsector=GICS_CODE["Industrials"],
                                         indthru=pd.Timestamp("2011-06-30"))  # fmt: skip
        hgic.loc[row, "indfrom"] = pd.Timestamp("2011-07-01")
        hgic = pd.concat([before, hgic], ignore_index=True)
        extras["sector_change"] = (meta["ticker"].iloc[k], "Industrials", meta["sector"].iloc[k])
    out["comp", "co_hgic"] = hgic

    f = fund.assign(gvkey=fund["ticker"].map(lambda t: gvkey[ids[t]]))
    f = f.sort_values(["gvkey", "period_end"], kind="stable").reset_index(drop=True)
    fy = f["period_end"].dt.year
    m = 1e6
    q = pd.DataFrame(
        {
            "gvkey": f["gvkey"], "datadate": f["period_end"], "rdq": f["announcement_date"],
            "fyearq": fy, "fqtr": f["period_end"].dt.quarter, "indfmt": "INDL",
            "datafmt": "STD", "popsrc": "D", "consol": "C", "curcdq": "USD",
            "saleq": f["revenue"] / m, "oiadpq": f["ebit"] / m, "niq": f["net_income"] / m,
            "atq": f["total_assets"] / m, "ceqq": f["total_equity"] / m,
            "dlttq": f["total_debt"] / m, "dlcq": np.nan, "cheq": f["cash"] / m,
            "actq": f["current_assets"] / m, "lctq": f["current_liabilities"] / m,
            "ppentq": f["net_fixed_assets"] / m, "cshoq": f["shares_outstanding"] / m,
            "oancfy": f.groupby(["gvkey", fy])["operating_cash_flow"].cumsum() / m,
            "capxy": f.groupby(["gvkey", fy])["capex"].cumsum() / m,
            "cogsq": (f["revenue"] - f["gross_profit"]) / m,
        }
    )  # fmt: skip
    rows = np.flatnonzero(f["ticker"].isin(member))
    a, b = int(rows[6]), int(rows[9])
    restated = q.iloc[[a]].assign(
        rdq=q["rdq"].iloc[a] + pd.Timedelta(days=100), saleq=q["saleq"].iloc[a] * 1.1
    )
    extras["restated"] = (f["ticker"].iloc[a], f["period_end"].iloc[a], restated["rdq"].iloc[0])
    extras["no_rdq"] = (f["ticker"].iloc[b], f["period_end"].iloc[b])
    if quirks:
        q.loc[b, "rdq"] = pd.NaT
    decoy_q = q.iloc[[0]].assign(gvkey="999999", saleq=-1.0)
    # the same quarter reported again in Canadian dollars: not ours to mix with dollars
    cad = q.iloc[[int(rows[12])]].assign(curcdq="CAD", saleq=q["saleq"].iloc[int(rows[12])] * 1.35)
    out["comp", "fundq"] = pd.concat(
        [q, restated.iloc[: int(quirks)], decoy_q, cad.iloc[: int(quirks)]], ignore_index=True
    )
    # Compustat Snapshot: every quarter's first version, known from its report date (or 45 days
    # after the quarter where there is none); the restated quarter's first version valid until
    # the day before its restatement, and the restated version from that day on (its report
    # date unchanged: the snapshot dates the version, not the report)
    first_known = q["rdq"].fillna(q["datadate"] + pd.Timedelta(days=45))
    pit = q.assign(pitdate1=first_known, pitdate2=pd.NaT, updq=3.0)
    if quirks:
        pit.loc[a, "pitdate2"] = restated["rdq"].iloc[0] - pd.Timedelta(days=1)
        again = restated.assign(rdq=q["rdq"].iloc[a], pitdate1=restated["rdq"], pitdate2=pd.NaT,
                                updq=3.0)  # fmt: skip
        pit = pd.concat([pit, again], ignore_index=True)
    out["comp_snapshot", "wrds_csq_pit"] = pit
    return out, extras


def fill(
    url: str, database: str, settings: simulated.SimulationSettings = SETTINGS, quirks: bool = True
) -> dict:
    """Create `database` on the server at url, with the crsp and comp schemas; returns EXTRAS."""
    frames, extras = tables(settings, quirks)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    admin.dispose()
    engine = sa.create_engine(url.rsplit("/", 1)[0] + "/" + database)
    with engine.begin() as conn:
        for schema in ("crsp", "comp", "comp_snapshot"):
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    types = schema_types()
    for (schema, table), frame in frames.items():
        columns = types[f"{schema}.{table}"]
        assert set(frame.columns) == set(columns), (
            schema,
            table,
            set(frame.columns) ^ set(columns),
        )
        frame = frame[list(columns)]
        ddl = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {schema}.{table} ({ddl})")
        frame.to_sql(table, engine, schema=schema, index=False, if_exists="append")
    engine.dispose()
    return extras


SCHEMA = Path(__file__).with_name("wrds_schema.toml")


def schema_types() -> dict[str, dict[str, str]]:
    """tests/wrds_schema.toml: {"schema.table": {column: PostgreSQL type}}, in column order."""
    with SCHEMA.open("rb") as f:
        doc = tomllib.load(f)
    return {
        f"{schema}.{table}": {column: spec[0] for column, spec in columns.items()}
        for schema, tables in doc.items()
        for table, columns in tables.items()
    }
