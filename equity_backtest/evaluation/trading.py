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
    p = positions.assign(
        ticker=positions["ticker"].astype(str), d=positions["date"].map(day).to_numpy()
    )
    p = p.sort_values(["ticker", "d"], kind="stable")
    new_period = (p["ticker"] != p["ticker"].shift()) | (p["d"] != p["d"].shift() + 1)
    p["period"] = new_period.cumsum()
    periods = p.groupby("period").agg(
        ticker=("ticker", "first"),
        first=("d", "first"),
        last=("d", "last"),
        end_value=("value", "last"),
        side=("shares", "first"),
    )
    flows = cash_ledger[cash_ledger["ticker"].fillna("").astype(str) != ""]
    flows = flows.assign(ticker=flows["ticker"].astype(str), d=flows["date"].map(day).to_numpy())
    rows = []
    for ticker, grp in periods.groupby("ticker", sort=False):
        f = flows[flows["ticker"] == ticker]
        for _, per in grp.iterrows():
            is_closed = per["last"] < len(dates) - 1
            inside = f[(f["d"] >= per["first"]) & (f["d"] <= per["last"] + (1 if is_closed else 0))]
            pnl = float(inside["amount"].sum()) + (0.0 if is_closed else float(per["end_value"]))
            long = per["side"] > 0
            opening_kind = "purchase" if long else "sale"
            invested = float(inside.loc[inside["kind"] == opening_kind, "amount"].abs().sum())
            rows.append(
                {
                    "ticker": ticker,
                    "opened": dates[per["first"]],
                    "closed": dates[per["last"] + 1] if is_closed else pd.NaT,
                    "days": int(
                        (
                            (dates[per["last"] + 1] if is_closed else dates[-1])
                            - dates[per["first"]]
                        ).days
                    ),
                    "pnl": pnl,
                    "invested": invested,
                    "return": pnl / invested if invested > 0 else np.nan,
                    "side": "long" if long else "short",
                    "is_closed": bool(is_closed),
                }
            )
    return (
        pd.DataFrame(rows, columns=cols)
        .sort_values(["opened", "ticker"], kind="stable")
        .reset_index(drop=True)
    )


def round_trip_stats(trips: pd.DataFrame) -> dict[str, float]:
    """Statistics of the closed round trips. Expectancy is the mean profit per round trip; the
    trimmed one leaves out the top 5% of winners (rounded up: at least one), to show whether the
    edge rests on a few outliers."""
    closed = trips[trips["is_closed"]] if len(trips) else trips
    pnl = closed["pnl"].to_numpy(dtype=float) if len(closed) else np.array([])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if len(wins):  # drop the ceil(5%) largest winners (at least one)
        k = int(np.ceil(0.05 * len(wins)))
        trimmed = np.r_[pnl[pnl <= 0], np.sort(wins)[: len(wins) - k]]
    else:
        trimmed = pnl
    nan = float("nan")
    return {
        "round_trips": int(len(pnl)),
        "open_positions_at_end": int(len(trips) - len(closed)),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else nan,
        "average_win": float(wins.mean()) if len(wins) else nan,
        "average_loss": float(losses.mean()) if len(losses) else nan,
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else nan,
        "median_trade": float(np.median(pnl)) if len(pnl) else nan,
        "expectancy": float(pnl.mean()) if len(pnl) else nan,
        "expectancy_without_top_5pct_winners": float(trimmed.mean()) if len(trimmed) else nan,
        "average_holding_days": float(closed["days"].mean()) if len(closed) else nan,
    }
