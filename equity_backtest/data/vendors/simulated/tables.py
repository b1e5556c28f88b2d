"""The simulation's arrays assembled into the vendor's tables (prices, fundamentals, corporate
actions, constituent lists, metadata, regimes), numbers quoted as the datalog writes them."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ...datalog import quote
from ...vocabulary import MARKET_FIELDS
from .settings import FUNDAMENTAL_METRICS, SimulatedMarket


def _assemble(
    settings, cal, meta, out, actions, fundamentals, constituents, events, regimes
) -> SimulatedMarket:
    """Turn the simulation's arrays and event lists into vendor-shaped tables (emptying `out`,
    each day-by-ticker array freed once its column is made)."""
    names = meta["ticker"].to_numpy(dtype=object)
    cols, rows = np.nonzero(np.isfinite(out["close"]).T)  # (ticker by ticker, days in order)
    with ThreadPoolExecutor(2) as pool:  # (numpy gathers run without the GIL: both cores)
        same = itertools.repeat
        fields = pool.map(_gathered, same(out), MARKET_FIELDS, same(rows), same(cols))
        columns = {"ticker": names[cols], "date": cal[rows]}
        columns |= dict(zip(MARKET_FIELDS, fields, strict=True))
    prices = pd.DataFrame(columns, copy=False)  # (the arrays as they are, no second copy)
    del columns, rows, cols

    columns = ["i", "period_end", "announcement_date", *FUNDAMENTAL_METRICS]
    fund = pd.DataFrame({k: np.concatenate([q[k] for q in fundamentals]) for k in columns})
    fund.insert(0, "ticker", names[fund.pop("i").to_numpy()])
    day, firm, kind, value = map(list, zip(*actions, strict=True)) if actions else [[]] * 4
    ca = pd.DataFrame(
        {
            "ticker": names[firm],
            "date": cal[day],
            "action": np.array(kind, dtype=object),
            "value": np.array(value, dtype=float),
        }
    )
    # a company that is gone publishes no later report
    delist = ca[ca.action == "delisting"].set_index("ticker")["date"]
    # (reindexed, not mapped: pandas 3 maps through an empty datetime Series as floats)
    gone = pd.Series(delist.reindex(fund["ticker"]).to_numpy(), index=fund.index)
    fund = fund[gone.isna() | (fund["announcement_date"] < gone)]
    # and nothing announced after the query (the day after the simulated end) is known to it
    fund = fund[fund["announcement_date"] <= cal[-1] + pd.Timedelta(days=1)].reset_index(drop=True)
    days, members, weights = zip(*constituents, strict=True)
    cons = pd.DataFrame(
        {
            "date": cal[np.repeat(days, [len(m) for m in members])],
            "ticker": names[np.concatenate(members)],
            "weight": np.concatenate(weights),
        }
    )
    cons.insert(1, "index", settings.index_name)
    ev = pd.DataFrame(events, columns=["ticker", "date", "event", "value"])
    return SimulatedMarket(
        settings,
        cal,
        meta,
        prices,
        fund,
        ca.sort_values(["ticker", "date"], kind="stable"),
        cons,
        ev,
        regimes,
    )


def _gathered(out: dict, key: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """out[key] at (rows, cols), the day-by-ticker array freed once read."""
    return out.pop(key)[rows, cols]


def _quoted(frame: pd.DataFrame) -> pd.DataFrame:
    """The simulated vendor quotes numbers to 10 significant digits, as a data feed does; the
    datalog then stores exactly these values (and the same bytes as before logs were lossless)."""
    quoted = {
        col: quote(values.to_numpy()) if pd.api.types.is_float_dtype(values.dtype) else values
        for col, values in frame.items()
    }  # (new arrays for the numbers only, not a copy of the whole frame first)
    return pd.DataFrame(quoted, index=frame.index, copy=False)
