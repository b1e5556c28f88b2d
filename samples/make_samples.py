#!/usr/bin/env python3
"""Regenerate the sample exports in this folder from the simulated market (seed 42).

They imitate real vendors' export shapes so the file vendor (D4) can be tried and tested offline;
the numbers are simulated, not real market data.
  datastream_close.csv, datastream_volume.csv, datastream_mv.csv  DataStream-style wide tables:
      one row per day (dd/mm/yyyy), one column per ticker; split-adjusted prices and volumes (as
      DataStream's P and VO are); market value in millions
  fundamentals_wide.csv  a one-wide-table export: a row per symbol and quarter with the quarter-end
      price and ratios (P/E, ROCE, EV/EBIT) beside the statement lines, and the filing date
  constituents.csv  an index history: one row per list date and member
  ohlcv_one_ticker.csv  one stock's daily OHLCV in backtesting.py's layout (Date, Open, High,
      Low, Close, Volume; split-adjusted), for the single-instrument example (docs/coming_from.md)
"""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from equity_backtest.data.vendors import simulated

HERE = Path(__file__).resolve().parent
START, END = pd.Timestamp("2019-01-01"), pd.Timestamp("2022-12-31")


def main() -> None:
    m = simulated.simulate(simulated.SimulationSettings(seed=42, end=dt.date(2022, 12, 31)))
    cons = m.constituents[(m.constituents["date"] >= START)]
    first = cons[cons["date"] == cons["date"].min()].nlargest(15, "weight")["ticker"]
    tickers = sorted(first)
    prices = m.prices[
        m.prices["ticker"].isin(tickers) & (m.prices["date"] >= START) & (m.prices["date"] <= END)
    ].copy()
    # split-adjusted, as DataStream's price and volume series are: earlier prices / later splits
    splits = m.corporate_actions[m.corporate_actions["action"] == "split"]
    factor = np.ones(len(prices))
    for _, sp in splits[splits["ticker"].isin(tickers)].iterrows():
        factor[((prices["ticker"] == sp["ticker"]) & (prices["date"] < sp["date"])).to_numpy()] *= (
            sp["value"]
        )
    prices["close"] = prices["close"] / factor
    prices["volume"] = prices["volume"] * factor
    for field, name, scale in (
        ("close", "datastream_close.csv", 1.0),
        ("volume", "datastream_volume.csv", 1.0),
        ("market_cap", "datastream_mv.csv", 1e-6),
    ):
        wide = prices.pivot(index="date", columns="ticker", values=field) * scale
        wide.index = wide.index.strftime("%d/%m/%Y")
        wide.rename_axis("Date").round(4).to_csv(HERE / name)
    f = m.fundamentals[
        m.fundamentals["ticker"].isin(tickers)
        & (m.fundamentals["period_end"] >= START)
        & (m.fundamentals["announcement_date"] <= END)
    ]
    close = prices.set_index(["ticker", "date"])["close"]
    q_price = [
        close.loc[t][:d].iloc[-1] if len(close.loc[t][:d]) else np.nan
        for t, d in zip(f["ticker"], f["period_end"], strict=True)
    ]
    cap = [p * s for p, s in zip(q_price, f["shares_outstanding"], strict=True)]
    table = pd.DataFrame(
        {
            "symbol": f["ticker"],
            "date": f["period_end"].dt.strftime("%Y-%m-%d"),
            "fillingDate": f["announcement_date"].dt.strftime("%Y-%m-%d"),
            "price": np.round(q_price, 4),
            "revenue": f["revenue"].round(0),
            "operatingIncome": f["ebit"].round(0),
            "netIncome": f["net_income"].round(0),
            "grossProfit": f["gross_profit"].round(0),
            "totalAssets": f["total_assets"].round(0),
            "totalStockholdersEquity": f["total_equity"].round(0),
            "totalDebt": f["total_debt"].round(0),
            "cashAndCashEquivalents": f["cash"].round(0),
            "totalCurrentAssets": f["current_assets"].round(0),
            "totalCurrentLiabilities": f["current_liabilities"].round(0),
            "propertyPlantEquipmentNet": f["net_fixed_assets"].round(0),
            "sharesOutstanding": f["shares_outstanding"],
            "pe": np.round(np.array(cap) / (4 * f["net_income"]), 3),
            "roce": np.round(f["ebit"] * 4 / (f["total_assets"] - f["current_liabilities"]), 4),
            "evToEbit": np.round(
                (np.array(cap) + f["total_debt"] - f["cash"]) / (4 * f["ebit"]), 3
            ),
        }
    )
    table.to_csv(HERE / "fundamentals_wide.csv", index=False)
    members = cons[cons["ticker"].isin(tickers)].copy()
    members["rank"] = members.groupby("date")["weight"].rank(ascending=False)
    members = members[members["rank"] <= 10]
    pd.DataFrame(
        {
            "ListDate": members["date"].dt.strftime("%Y-%m-%d"),
            "Index": "SAMPLE10",
            "Constituent": members["ticker"],
        }
    ).to_csv(HERE / "constituents.csv", index=False)
    ohlcv_one_ticker(m, tickers[0])


def ohlcv_one_ticker(m, ticker: str) -> None:
    """One stock's bars as backtesting.py and most single-instrument tools read them."""
    bars = m.prices[(m.prices["ticker"] == ticker) & (m.prices["date"] >= START)]
    bars = bars[bars["date"] <= END].set_index("date")
    splits = m.corporate_actions[
        (m.corporate_actions["ticker"] == ticker) & (m.corporate_actions["action"] == "split")
    ]
    factor = pd.Series(1.0, index=bars.index)
    for _, sp in splits.iterrows():
        factor[factor.index < sp["date"]] *= sp["value"]
    out = pd.DataFrame(
        {
            "Open": bars["open"] / factor, "High": bars["high"] / factor,
            "Low": bars["low"] / factor, "Close": bars["close"] / factor,
            "Volume": (bars["volume"] * factor).round(0).astype("int64"),
        }
    ).round(4)  # fmt: skip
    out.index = out.index.strftime("%Y-%m-%d")
    out.rename_axis("Date").to_csv(HERE / "ohlcv_one_ticker.csv")


if __name__ == "__main__":
    main()
