"""A stand-in for LSEG's Datastream Web Service at its HTTP boundary, built from the simulated market.

DatastreamPy (the real package) logs in and asks over HTTPS; this server answers on loopback in
DSWS's JSON shapes (GetToken, GetData: DataResponse with Dates as "/Date(ms+0000)/" and
DataTypeValues of SymbolValues, errors as "$$ER" values, a refused login as a 400 DSFault). Its
certificate comes from a throwaway CA (trustme) that the client is told to trust through its own
config file, as a user behind a corporate proxy would.

What it serves, as Datastream does: every instrument under a six-digit DSCD (the simulated
tickers in order); month lists "<LIST><MMYY>" (members on the month's last day); a value for every
weekday (holidays carry the day before, with no volume); after a company dies its last price
until the end of the data, with "DEAD - DELIST.dd/mm/yy" in its NAME (except for one, which only
the padding shows); P, PO, PH, PL adjusted for later splits, UP as it was, VO in thousands, MV in
millions, RI with dividends reinvested at the ex-date's close, UDDE and XDDE padded after each
ex-date; one company renamed (a new NAME and MNEM, the same DSCD). With `traps`, what a careful
reader must catch: a one-day spike of +200% reversed the next day, a penny stock, an RI that
leaves out dividends, a stretch without MV, and a session with no answer.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from equity_backtest.data.vendors import simulated
from equity_backtest.data.vendors.datastream_fields import FUNDAMENTAL_DATATYPES

from .http_stand_in import JSONHandler

LIST = "LS&PSIM"
USER, PASSWORD = "ZDSW001", "secret"
ERROR = '$$"ER", E100,INVALID CODE OR EXPRESSION ENTERED'
REPORT_DATE = "WC05905A"
MARKET_TYPES = ("UP", "P", "PO", "PH", "PL", "VO", "MV", "NOSH", "RI", "UDDE", "XDDE")


def _ms(day) -> str:
    return f"/Date({int(pd.Timestamp(day).value // 1_000_000)}+0000)/"


class Market:
    """The simulated market as Datastream would hold it: per code, one value per weekday."""

    def __init__(self, settings: simulated.SimulationSettings, traps: bool = False):
        market = simulated.simulate(settings)
        tickers = sorted(market.metadata["ticker"])
        self.code = {t: f"{900001 + i}" for i, t in enumerate(tickers)}
        self.ticker = {c: t for t, c in self.code.items()}
        self.weekdays = pd.bdate_range(settings.start, settings.end)
        self.sessions = pd.DatetimeIndex(sorted(market.prices["date"].unique()))
        self.lists = {d: list(g["ticker"]) for d, g in market.constituents.groupby("date")}
        self.static: dict[str, dict[str, object]] = {}
        self.series: dict[str, dict[str, np.ndarray]] = {}
        self.quarterly: dict[str, dict[str, pd.Series]] = {}
        ca = market.corporate_actions
        dead_on = ca[ca["action"] == "delisting"].set_index("ticker")["date"]
        members = {t for names in self.lists.values() for t in names}
        dead_members = dead_on[dead_on.index.isin(members)].sort_values()
        self.dead_unmarked = dead_members.index[0] if len(dead_members) else None
        self.missing_months: set[str] = set()  # list mnemonics answered with an error
        for row in market.metadata.itertuples():
            name = str(row.name)
            if row.ticker in dead_on.index and row.ticker != self.dead_unmarked:
                last = self.sessions[self.sessions < dead_on[row.ticker]][-1]
                name = f"{name} DEAD - DELIST.{last:%d/%m/%y}"
            self.static[self.code[row.ticker]] = {
                "DSCD": self.code[row.ticker], "NAME": name, "ISIN": row.isin,
                "MNEM": f"U:{row.ticker}", "INDM": row.sector, "PCUR": "U$",
                "BDATE": _ms(row.listing_date), "EXMNEM": "NYS",
            }  # fmt: skip
        self.renamed = sorted(members)[1]
        self.static[self.code[self.renamed]].update(NAME="NEWCO HOLDINGS", MNEM="U:NEWCO")
        for ticker, rows in market.prices.groupby("ticker"):
            actions = ca[ca["ticker"] == ticker]
            self.series[self.code[ticker]] = self._daily(rows, actions)
        for ticker, rows in market.fundamentals.groupby("ticker"):
            ends = pd.to_datetime(rows["period_end"])
            self.quarterly[self.code[ticker]] = {
                field: pd.Series(rows[metric].to_numpy(float), index=ends)
                for metric, field in FUNDAMENTAL_DATATYPES.items()
            }  # fmt: skip
            # the report date, as public code asks Worldscope for it
            self.quarterly[self.code[ticker]][REPORT_DATE] = pd.Series(
                pd.to_datetime(rows["announcement_date"]).to_numpy(), index=ends
            )
        self.traps = {}
        if traps:
            self._plant_traps(market, tickers)
        self.members_ever = sorted({self.code[t] for names in self.lists.values() for t in names})

    def _daily(self, rows: pd.DataFrame, actions: pd.DataFrame) -> dict[str, np.ndarray]:
        rows = rows.set_index("date").sort_index()
        splits = actions[actions["action"] == "split"].set_index("date")["value"]
        cash = actions[actions["action"] == "dividend"].groupby("date")["value"].sum()
        # P: prices divided by every later split's ratio
        later = pd.Series(1.0, index=rows.index)
        for day, ratio in splits.items():
            later[later.index < day] *= ratio
        close = rows["close"].astype(float)
        split_on = splits.groupby(level=0).prod().reindex(rows.index, fill_value=1.0)
        paid = cash.reindex(rows.index, fill_value=0.0)
        growth = ((close + paid) * split_on / close.shift(1)).fillna(1.0)
        ri = 100 * growth.cumprod()
        ex = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns]")
        ex[paid > 0] = rows.index[paid > 0]
        udde = paid.where(paid > 0)
        frame = pd.DataFrame({
            "UP": close, "P": close / later, "PO": rows["open"] / later,
            "PH": rows["high"] / later, "PL": rows["low"] / later, "VO": rows["volume"] / 1000,
            "MV": rows["market_cap"] / 1e6, "NOSH": rows["market_cap"] / close / 1000,
            "RI": ri, "UDDE": udde.ffill(), "XDDE": ex.ffill(),
        })  # fmt: skip
        # every weekday: a holiday repeats the day before without volume; after the last trade
        # (a death) the last values go on to the end of the data, also without volume
        listed = self.weekdays[self.weekdays >= rows.index[0]]
        frame = frame.reindex(listed).ffill()
        traded = listed.isin(rows.index)
        frame.loc[~traded, "VO"] = np.nan
        frame = frame.reindex(self.weekdays)
        return {k: frame[k].to_numpy().copy() for k in frame.columns}

    def _plant_traps(self, market, tickers) -> None:
        members = sorted({t for names in self.lists.values() for t in names})
        codes = [self.code[t] for t in members]
        at = {c: np.flatnonzero(~np.isnan(self.series[c]["UP"])) for c in codes}
        # a +200% spike reversed the next day
        spike = codes[3]
        day = at[spike][60]
        for k in ("UP", "P", "PO", "PH", "PL"):
            self.series[spike][k][day] *= 3
        # a penny stock: every price a hundredth (its RI, being relative, unchanged)
        penny = codes[4]
        for k in ("UP", "P", "PO", "PH", "PL", "UDDE"):
            self.series[penny][k] = self.series[penny][k] / 100
        # an RI that leaves out this company's dividends (a price index under RI's name)
        rest = [c for c in codes if c not in (spike, penny)]
        ri_code = max(rest, key=lambda c: np.nansum(self.series[c]["UDDE"]))
        up, ri = self.series[ri_code]["UP"], self.series[ri_code]["RI"]
        first = np.flatnonzero(~np.isnan(up))[0]
        ri[:] = 100 * up / up[first]
        # no MV for a stretch (its market value is then UP x NOSH)
        no_mv = next(c for c in rest if c not in (ri_code,))
        self.series[no_mv]["MV"][at[no_mv][10:30]] = np.nan
        # a session with no answer at all
        hole = next(c for c in rest if c not in (ri_code, no_mv))
        day = at[hole][100]
        for k in MARKET_TYPES:
            self.series[hole][k] = self.series[hole][k].astype(object)
            self.series[hole][k][day] = None
        self.traps = {"spike": spike, "penny": penny, "ri": ri_code, "hole": hole, "no_mv": no_mv,
                      "hole_day": self.weekdays[day]}  # fmt: skip

    def members(self, mnemonic: str) -> list[str] | None:
        if mnemonic in self.missing_months:
            return None
        if not mnemonic.startswith(LIST) or len(mnemonic) != len(LIST) + 4:
            return None
        month = pd.Period(f"20{mnemonic[-2:]}-{mnemonic[-4:-2]}", freq="M")
        known = [d for d in self.lists if d <= month.end_time]
        return [self.code[t] for t in self.lists[max(known)]] if known else None


class Handler(JSONHandler):
    market: Market
    calls: list
    on_call: Callable[[int], None] | None = None
    fail_calls: set = frozenset()  # call numbers answered 503 (a transient failure)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = self.path.rsplit("/", 1)[-1]
        self.calls.append((name, body))
        if self.on_call is not None:
            self.on_call(len(self.calls))
        if len(self.calls) in self.fail_calls:
            return self._send(503, {"Message": "Service Unavailable"})
        if name == "GetToken":
            if body.get("UserName") != USER or body.get("Password") != PASSWORD:
                return self._send(400, {"Code": "InvalidCredentials", "SubCode": None,
                                        "Message": "Invalid username or password"})  # fmt: skip
            expiry = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
            return self._send(200, {"TokenValue": "token-1", "TokenExpiry": _ms(expiry),
                                    "Properties": None})  # fmt: skip
        if name != "GetData" or body.get("TokenValue") != "token-1":
            return self._send(403, {"Code": "Forbidden", "SubCode": None, "Message": "no token"})
        return self._send(200, {"DataResponse": self._answer(body["DataRequest"]),
                                "Properties": None})  # fmt: skip

    def _answer(self, request: dict) -> dict:
        m = self.market
        instrument = request["Instrument"]
        datatypes = [d["Value"] for d in request["DataTypes"]]
        date = request["Date"]
        is_list = any(p["Key"] == "IsList" for p in instrument.get("Properties") or [])
        if date["Kind"] == 0:
            day = pd.Timestamp(date["Start"] or m.weekdays[-1])
            codes = m.members(instrument["Value"]) if is_list else instrument["Value"].split(",")
            values = []
            for field in datatypes:
                symbols = []
                for code in codes or [instrument["Value"]]:
                    known = codes is not None and code in m.static
                    symbols.append({"Symbol": code, "Type": 6 if known else 0,
                                    "Value": m.static[code][field] if known else ERROR})  # fmt: skip
                values.append({"DataType": field, "SymbolValues": symbols})
            return {"Dates": [_ms(day)], "DataTypeValues": values, "SymbolNames": None,
                    "DataTypeNames": None, "Tag": None}  # fmt: skip
        start, end = pd.Timestamp(date["Start"]), pd.Timestamp(date["End"])
        if date["Frequency"] == "Q":
            dates = pd.date_range(start, end, freq="QE")
        else:
            dates = m.weekdays[(m.weekdays >= start) & (m.weekdays <= end)]
        values = []
        for field in datatypes:
            symbols = []
            for code in instrument["Value"].split(","):
                symbols.append(self._series(code, field, dates, date["Frequency"]))
            values.append({"DataType": field, "SymbolValues": symbols})
        return {"Dates": [_ms(d) for d in dates], "DataTypeValues": values,
                "SymbolNames": None, "DataTypeNames": None, "Tag": None}  # fmt: skip

    def _series(self, code: str, field: str, dates: pd.DatetimeIndex, freq: str) -> dict:
        m = self.market
        if code not in m.series:
            return {"Symbol": code, "Type": 0, "Value": ERROR}
        if freq == "Q":
            known = m.quarterly.get(code, {}).get(field)
            if known is None:
                return {"Symbol": code, "Type": 0, "Value": ERROR}
            padded = known.sort_index().reindex(dates, method="ffill")
            out = [
                None if pd.isna(v) else _ms(v) if isinstance(v, pd.Timestamp) else float(v)
                for v in padded
            ]
            return {"Symbol": code, "Type": 16, "Value": out}
        if field not in m.series[code]:
            return {"Symbol": code, "Type": 0, "Value": ERROR}
        at = m.weekdays.get_indexer(dates)
        raw = m.series[code][field][at]
        if field == "XDDE":
            out = [None if pd.isna(v) else _ms(v) for v in raw]
        else:
            out = [None if v is None or pd.isna(v) else float(v) for v in raw]
        return {"Symbol": code, "Type": 16, "Value": out}


class StandIn:
    """The server on a free loopback port, with the CA certificate a client must trust."""

    def __init__(self, market: Market, folder: Path):
        import trustme

        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.ca_file = folder / "stand_in_ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        handler = type("H", (Handler,), {"market": market, "calls": [], "on_call": None})
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on_call(self, hook: Callable[[int], None] | None, fail: set | None = None) -> None:
        """Call hook(n) on the n-th request from now on; answer the `fail` ones with 503."""
        self.handler.calls.clear()
        self.handler.on_call = staticmethod(hook) if hook else None
        self.handler.fail_calls = set(fail or ())

    @property
    def calls(self) -> list:
        return self.handler.calls

    def config_file(self, path: Path, url: str | None = None) -> Path:
        """A DatastreamPy config file pointing at this server (or `url`), trusting its CA."""
        path.write_text(f"[url]\npath={url or self.url}\n[cert]\nsslVerify={self.ca_file}\n")
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
