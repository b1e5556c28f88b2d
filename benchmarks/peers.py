#!/usr/bin/env python3
"""Our engine next to vectorbt and bt on one workload, in one process.

The workload: an S&P-500-sized simulated market (700 tickers ever, an index of the top 500, 20
years of daily bars), monthly rebalancing to equal weights over the priced point-in-time members.
Our engine runs it twice: as the peers can (no costs, no volume cap, fractional shares, no cash
buffer or no-trade band, orders filled at the next close), and as a user would (the default
costs, a 10% volume cap, fills at the next open). The peers get the same targets: our first
run's weights, shifted to the day they fill, on total-return closes (splits, dividends and
delisting values folded into the price, since neither peer books corporate actions).

vectorbt values the portfolio and sizes orders at the previous close (val_price=-inf), as ours
does; bt sizes at the fill's close. Each tool is timed warm (vectorbt's JIT compiled by a first
call), the median of --repeat runs (bt, at 15 s a run, once or twice); the table shows seconds,
the ratio to each of our two runs (the issue's target: vectorbt at 6x or more of ours with
costs), and the final values side by side. vectorbt and bt are optional benchmark dependencies
(pip install vectorbt bt), never runtime ones: a peer that is not installed is reported as such.

    python benchmarks/peers.py [--tickers 700] [--index-size 500] [--years 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workload import size_arguments, store  # noqa: E402  (benchmarks/workload.py, next to this file)

from equity_backtest.config import Parameters  # noqa: E402
from equity_backtest.data.panel import Panel, load_panel  # noqa: E402
from equity_backtest.engine.loop import run_backtest  # noqa: E402

START_CASH = 1_000_000.0


def equal_weights(view, params):
    """Equal weights over the members priced at this close."""
    members = view.market(view.universe)
    priced = members.index[members["traded"].to_numpy()]
    return pd.Series(1.0 / len(priced), index=priced)


def workload(args) -> tuple[Parameters, Panel]:
    params = store(args.tickers, args.index_size, args.years)
    return params, load_panel(params)


@dataclasses.dataclass
class Timing:
    name: str
    seconds: float | None
    final_value: float | None
    note: str = ""


def median_of(repeat: int, run):
    """The median of `repeat` timed runs (the issue's measure), and the last run's result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def ours(panel: Panel, params: Parameters, repeat: int):
    """(timing as the peers run, timing as a user runs, the peer-comparable run's result)."""
    bare = params.replace(
        spread_bps=0.0, slippage_bps=0.0, impact_coef=0.0, commission_rate=0.0,
        commission_min=0.0, volume_cap=1.0, fractional_shares=True, cash_buffer=0.0,
        no_trade_band=0.0, fill_timing="close",
    )  # fmt: skip
    seconds, result = median_of(repeat, lambda: run_backtest(panel, bare, equal_weights))
    full_s, full = median_of(repeat, lambda: run_backtest(panel, params, equal_weights))
    return (
        Timing("ours, as the peers run", seconds, float(result.runtime_log["value"].iloc[-1])),
        Timing(
            "ours, costs + 10% volume cap + next-open fills",
            full_s,
            float(full.runtime_log["value"].iloc[-1]),
            "with costs: not comparable in value",
        ),
        result,
    )


def peer_inputs(panel: Panel, result) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Total-return closes over the run's window, and target weights on the day they fill."""
    days = pd.DatetimeIndex(result.runtime_log["date"])
    t0 = int(panel.dates.get_loc(days[0]))
    ret = pd.DataFrame(panel.total_return, index=panel.dates, columns=panel.labels)
    level = (1 + ret.fillna(0.0)).cumprod()
    listed = pd.DataFrame(np.isfinite(panel.mark), index=panel.dates, columns=panel.labels)
    # the price while listed and on a delisting's day (its value); frozen after, unknown before
    price = level.where(listed | listed.shift(1, fill_value=False)).ffill()
    price = price.iloc[t0 : t0 + len(days)].clip(lower=1e-6)  # a bankruptcy's 0: the peers
    # refuse orders at a price of 0, so the dead holding is sold at a price of nearly nothing
    weights = result.target_weights.pivot_table(
        index="date", columns="ticker", values="weight", observed=True
    )
    weights = weights.reindex(columns=panel.labels, fill_value=0.0).fillna(0.0)
    # decided at a close, filled at the next close (ours: fill_timing = "close")
    fill_day = days[days.get_indexer(weights.index) + 1]
    weights.index = fill_day
    weights = weights.reindex(days)
    weights.index, weights.columns = price.index, price.columns
    # an order only for a ticker targeted now or at the last rebalance (held): none on others
    rebalances = weights.dropna(how="all")
    relevant = (rebalances != 0) | (rebalances.shift(1, fill_value=0.0) != 0)
    weights = weights.where(relevant.reindex(weights.index, fill_value=False))
    # the peers want a finite price every day: before listing, the first price (never traded)
    traded = price.notna().any()
    return price.loc[:, traded].bfill(), weights.loc[:, traded]


def vectorbt_run(price: pd.DataFrame, weights: pd.DataFrame, repeat: int) -> Timing:
    try:
        import vectorbt as vbt
    except ImportError:
        return Timing("vectorbt", None, None, "not installed (pip install vectorbt)")

    def run():
        return vbt.Portfolio.from_orders(
            close=price, size=weights, size_type="targetpercent", val_price=-np.inf,
            group_by=True,
            cash_sharing=True, call_seq="auto", init_cash=START_CASH, fees=0.0, freq="1D",
        )  # fmt: skip

    run()  # JIT compilation
    seconds, pf = median_of(repeat, run)
    version = importlib.metadata.version("vectorbt")
    return Timing(f"vectorbt {version}", seconds, float(pf.value().iloc[-1]))


def bt_run(price: pd.DataFrame, weights: pd.DataFrame, repeat: int) -> Timing:
    try:
        import bt
    except ImportError:
        return Timing("bt", None, None, "not installed (pip install bt)")
    days = weights.dropna(how="all").index
    weights = weights.fillna(0.0)
    data = price

    def run():
        strategy = bt.Strategy(
            "equal",
            [bt.algos.RunOnDate(*days), bt.algos.WeighTarget(weights.loc[days]),
             bt.algos.Rebalance()],
        )  # fmt: skip
        test = bt.Backtest(
            strategy, data, initial_capital=START_CASH, integer_positions=False,
            progress_bar=False,
        )  # fmt: skip
        return bt.run(test)

    seconds, res = median_of(max(1, min(repeat, 2)), run)
    version = importlib.metadata.version("bt")
    value = float(res.backtests["equal"].strategy.values.iloc[-1])
    return Timing(f"bt {version}", seconds, value)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size_arguments(ap)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of ours and vectorbt")
    args = ap.parse_args()

    params, panel = workload(args)
    bare, full, result = ours(panel, params, args.repeat)
    price, weights = peer_inputs(panel, result)
    rows = [bare, full, vectorbt_run(price, weights, args.repeat), bt_run(price, weights, 1)]
    n_days, n_assets = len(price), int((price.notna()).any().sum())
    print(
        f"{n_days} daily bars, {n_assets} tickers ever, {len(weights.dropna(how='all'))} "
        f"rebalances, equal weights over the priced point-in-time members of TOP{args.index_size}"
    )
    print(
        f"{'tool':<48} {'seconds':>8} {'x ours':>7} {'x ours+costs':>13} {'final value':>16}  note"
    )
    for row in rows:
        secs = f"{row.seconds:8.2f}" if row.seconds is not None else f"{'-':>8}"
        ratio = f"{row.seconds / bare.seconds:7.1f}" if row.seconds is not None else f"{'-':>7}"
        costly = f"{row.seconds / full.seconds:13.1f}" if row.seconds is not None else f"{'-':>13}"
        value = f"{row.final_value:16,.2f}" if row.final_value is not None else f"{'-':>16}"
        print(f"{row.name:<48} {secs} {ratio} {costly} {value}  {row.note}")
    print(
        "Differences in value: ours and vectorbt (val_price=-inf) size each order at the deciding "
        "close and fill it at the next close; bt sizes at the fill's own close. Ours pays "
        "dividends and delisting values as cash on their day, held until the next rebalance; the "
        "peers hold a total-return price that reinvests them at once (and a bankruptcy's 0 is "
        "1e-6 for them, as they refuse a price of 0)."
    )


if __name__ == "__main__":
    main()
