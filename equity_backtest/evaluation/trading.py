"""What the portfolio held and how its trades fared: exposures, sectors, round trips (V2, V4).

A round trip is one continuous holding period of a ticker: from the day a position is opened to
the day it is flat again. Its profit is the sum of that ticker's cash flows in the period
(purchases, sales, commissions, dividends, delisting proceeds), plus its market value at the end
if still open. This is robust to splits and to re-weighting while held, which share-lot matching
is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def exposures(positions: pd.DataFrame, runtime: pd.DataFrame) -> pd.DataFrame:
    """Per day: long, short, gross and net exposure as fractions of equity, and the number held."""
    value = runtime.set_index("date")["value"]
    p = positions.assign(
        long=positions["value"].clip(lower=0), short=positions["value"].clip(upper=0)
    )
    daily = p.groupby("date")[["long", "short"]].sum().reindex(value.index, fill_value=0.0)
    out = pd.DataFrame({"long": daily["long"] / value, "short": daily["short"] / value})
    out["gross"] = out["long"] - out["short"]
    out["net"] = out["long"] + out["short"]
    out["holdings"] = runtime.set_index("date")["positions"]
    return out


def by_day(
    positions: pd.DataFrame, field: str, days: pd.Index, tickers: pd.Index | None = None
) -> pd.DataFrame:
    """A days x tickers table of one positions field (weight or value), 0 where not held."""
    table = positions.assign(ticker=positions["ticker"].astype(str)).pivot_table(
        index="date", columns="ticker", values=field, aggfunc="sum", fill_value=0.0
    )
    return table.reindex(
        index=days, columns=tickers if tickers is not None else table.columns, fill_value=0.0
    )


def top_holdings(
    positions: pd.DataFrame, metadata: pd.DataFrame, days: int, n: int = 10
) -> pd.DataFrame:
    """The n largest holdings by mean weight over the run (days not held count as 0), with the
    weight on the last day, days held, name and sector."""
    cols = ["ticker", "name", "sector", "mean_weight", "last_weight", "days_held"]
    if positions.empty or days == 0:
        return pd.DataFrame(columns=cols)
    p = positions.assign(ticker=positions["ticker"].astype(str))
    last_day = p["date"].max()
    per = p.groupby("ticker").agg(total=("weight", "sum"), days_held=("date", "nunique"))
    per["mean_weight"] = per["total"] / days
    per["last_weight"] = p[p["date"] == last_day].groupby("ticker")["weight"].sum()
    per["last_weight"] = per["last_weight"].fillna(0.0)
    meta = metadata.assign(ticker=metadata["ticker"].astype(str)).set_index("ticker")
    per["name"] = meta["name"].reindex(per.index) if "name" in meta else ""
    per["sector"] = meta["sector"].reindex(per.index) if "sector" in meta else ""
    top = per.reindex(per["mean_weight"].abs().sort_values(ascending=False).index[:n])
    return top.reset_index()[cols]


def sector_weights(positions: pd.DataFrame, metadata: pd.DataFrame) -> pd.DataFrame:
    """Per day and sector: the summed weight of the holdings in that sector."""
    sector = metadata.set_index("ticker")["sector"]
    p = positions.assign(sector=positions["ticker"].astype(str).map(sector).fillna("Unknown"))
    return p.pivot_table(
        index="date", columns="sector", values="weight", aggfunc="sum", fill_value=0.0
    )


def round_trips(
    positions: pd.DataFrame, cash_ledger: pd.DataFrame, dates: pd.DatetimeIndex
) -> pd.DataFrame:
    """One row per holding period: ticker, opened, closed (NaT if still open), days held, profit,
    amount invested (purchases, or short-sale proceeds for a short), return on it."""
    cols = ["ticker", "opened", "closed", "days", "pnl", "invested", "return", "side", "is_closed"]
    if positions.empty:
        return pd.DataFrame(columns=cols)
    day = pd.Series(np.arange(len(dates)), index=dates)
    p = pd.DataFrame(
        {
            "ticker": positions["ticker"].astype(str).to_numpy(),
            "d": positions["date"].map(day).to_numpy(),
            "value": positions["value"].to_numpy(),
            "shares": positions["shares"].to_numpy(),
        }
    ).sort_values(["ticker", "d"], kind="stable")
    new_period = (p["ticker"] != p["ticker"].shift()) | (p["d"] != p["d"].shift() + 1)
    p["period"] = new_period.cumsum()
    per = p.groupby("period").agg(
        ticker=("ticker", "first"),
        first=("d", "first"),
        last=("d", "last"),
        end_value=("value", "last"),
        side=("shares", "first"),
    )
    per["is_closed"] = per["last"] < len(dates) - 1
    per["end"] = per["last"] + per["is_closed"].astype(int)  # a closing sale lands the day after
    # each cash flow of a ticker belongs to the latest period of that ticker opened on or before it
    f = cash_ledger[cash_ledger["ticker"].fillna("").astype(str) != ""]
    f = pd.DataFrame(
        {
            "ticker": f["ticker"].astype(str).to_numpy(),
            "d": f["date"].map(day).to_numpy(),
            "kind": f["kind"].to_numpy(),
            "amount": f["amount"].to_numpy(dtype=float),
        }
    )
    joined = pd.merge_asof(
        f.sort_values("d", kind="stable"),
        per.reset_index()[["period", "ticker", "first", "end", "side"]].sort_values("first"),
        left_on="d",
        right_on="first",
        by="ticker",
    )
    joined = joined[joined["d"] <= joined["end"]]
    opening = np.where(joined["side"] > 0, "purchase", "sale")
    joined["opening"] = np.where(joined["kind"] == opening, joined["amount"].abs(), 0.0)
    sums = joined.groupby("period")[["amount", "opening"]].sum().reindex(per.index, fill_value=0.0)
    pnl = sums["amount"] + np.where(per["is_closed"], 0.0, per["end_value"])
    closed_day = np.where(per["is_closed"], per["last"] + 1, len(dates) - 1)
    out = pd.DataFrame({
        "ticker": per["ticker"], "opened": dates[per["first"].to_numpy()],
        "closed": pd.DatetimeIndex(np.where(per["is_closed"], dates[closed_day.clip(max=len(dates) - 1)], pd.NaT)),
        "days": (dates[closed_day] - dates[per["first"].to_numpy()]).days.to_numpy(),
        "pnl": pnl.to_numpy(), "invested": sums["opening"].to_numpy(),
        "return": np.where(sums["opening"] > 0, pnl / sums["opening"].where(sums["opening"] > 0, 1.0), np.nan),
        "side": np.where(per["side"] > 0, "long", "short"), "is_closed": per["is_closed"].to_numpy(),
    })  # fmt: skip
    return out[cols].sort_values(["opened", "ticker"], kind="stable").reset_index(drop=True)


def round_trip_stats(trips: pd.DataFrame) -> dict[str, float]:
    """Statistics of every holding period: the closed round trips and the positions still open
    at the end, marked at the last close (a buy-and-hold winner that never closed is a winner,
    not left out). Expectancy is the mean profit per holding period; the trimmed one leaves out
    the top 5% of winners (rounded up: at least one), to show whether the edge rests on a few
    outliers. `round_trips` counts the closed ones, `open_positions_at_end` the others."""
    closed = trips[trips["is_closed"]] if len(trips) else trips
    pnl = trips["pnl"].to_numpy(dtype=float) if len(trips) else np.array([])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if len(wins):  # drop the ceil(5%) largest winners (at least one)
        k = int(np.ceil(0.05 * len(wins)))
        trimmed = np.r_[pnl[pnl <= 0], np.sort(wins)[: len(wins) - k]]
    else:
        trimmed = pnl
    nan = float("nan")
    return {
        "round_trips": int(len(closed)),
        "open_positions_at_end": int(len(trips) - len(closed)),
        "holding_periods": int(len(pnl)),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else nan,
        "average_win": float(wins.mean()) if len(wins) else nan,
        "average_loss": float(losses.mean()) if len(losses) else nan,
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else nan,
        "median_trade": float(np.median(pnl)) if len(pnl) else nan,
        "expectancy": float(pnl.mean()) if len(pnl) else nan,
        "expectancy_without_top_5pct_winners": float(trimmed.mean()) if len(trimmed) else nan,
        "average_holding_days": float(closed["days"].mean()) if len(closed) else nan,
    }
