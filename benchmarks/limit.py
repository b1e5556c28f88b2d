#!/usr/bin/env python3
"""The loop's limit: our heartbeat loop against a bare per-day numpy loop with the same features,
on the same S&P-500-sized panel, in the same process (issue #31's third goal is a ratio of 1.5 or
less).

The bare loop keeps only arrays: each day it applies splits, dividends and delistings, fills the
pending orders at the open (whole shares, a 10% volume cap, half the spread, slippage, square-root
impact on the 20-day volatility, a commission with its minimum), marks to market, and on a
rebalance day sizes equal weights of the members at the close with the cash buffer and the
no-trade band. It has no view object, no validation, no logs, no checkpoints and no archive
rows: what is left is the arithmetic every loop must do. Its final value is printed beside ours
as a sanity check (it does not scale buys to the cash left, so the two may differ slightly).

    python benchmarks/limit.py [--tickers 700] [--index-size 500] [--years 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import workload  # noqa: E402  (benchmarks/workload.py, next to this file)

from equity_backtest.data.panel import load_panel  # noqa: E402
from equity_backtest.engine.clock import heartbeat_range, rebalance_days  # noqa: E402
from equity_backtest.engine.loop import run_backtest  # noqa: E402


def bare_loop(panel, params) -> float:
    """The same days with the same features, arrays only; returns the final value."""
    t0, t1 = heartbeat_range(panel.dates, params.start, params.end)
    rebalance = rebalance_days(panel.dates, t0, t1, params.rebalance)
    opens, volume, mark = panel.fields["open"], panel.fields["volume"], panel.mark
    sigma = panel.volatility(params.impact_vol_days)
    ev = panel.events
    n = len(panel.tickers)
    shares, cash, pending = np.zeros(n), float(params.starting_cash), None
    half = (params.spread_bps / 2 + params.slippage_bps) / 1e4
    value = cash
    for t in range(t0, t1 + 1):
        if t in ev.splits:
            i, v = ev.splits[t]
            shares[i] *= v
        if t in ev.dividends:
            i, v = ev.dividends[t]
            cash += float(np.dot(shares[i], v))
        if t in ev.delistings:
            i, v = ev.delistings[t]
            cash += float(np.dot(shares[i], v))
            shares[i] = 0.0
        if pending is not None:
            idx = np.flatnonzero(pending)
            px, vol, want = opens[t, idx], volume[t, idx], pending[idx]
            unknown = np.isnan(vol)
            ok = np.isfinite(px) & (px > 0) & (unknown | (vol > 0))
            cap = np.where(unknown, np.inf, params.volume_cap * np.nan_to_num(vol))
            q = np.where(ok, np.trunc(np.clip(want, -cap, cap)), 0.0)
            q = np.maximum(q, -shares[idx])
            with np.errstate(invalid="ignore", divide="ignore"):
                impact = (
                    params.impact_coef
                    * np.nan_to_num(sigma[t, idx])
                    * np.sqrt(np.where(unknown, 0.0, np.abs(q) / np.where(vol > 0, vol, 1.0)))
                )
            fill = np.where(ok, px, 0.0) * (1 + np.sign(q) * (half + impact))
            traded = np.abs(q * fill)
            fees = np.where(
                q != 0, np.maximum(params.commission_rate * traded, params.commission_min), 0.0
            )
            cash -= float(np.dot(q, fill) + fees.sum())
            shares[idx] += q
            pending = None
        held = np.isfinite(mark[t]) & (shares != 0)
        value = cash + float(np.dot(shares[held], mark[t, held]))
        if rebalance[t]:
            members = panel.members(t)
            close = mark[t]
            w = np.where(members, 1.0 / max(int(members.sum()), 1), 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                target = np.where(
                    members, np.trunc(w * value * (1 - params.cash_buffer) / close), 0.0
                )
                now = np.where(np.isfinite(close), shares * close / value, 0.0)
            keep = (np.abs(w - now) < params.no_trade_band) & (target != 0) & (shares != 0)
            delta = np.where(keep, 0.0, target - shares)
            pending = np.where(np.isfinite(delta), delta, 0.0)
    return value


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    workload.size_arguments(ap)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each; medians compared")
    args = ap.parse_args()
    params = workload.store(args.tickers, args.index_size, args.years)
    panel = load_panel(params)
    panel.volatility(params.impact_vol_days)  # (computed with the panel, outside both timings)
    ours, bare, final, rule = [], [], {}, []

    def timed_rule(view, params):  # the rule's own time, which the bare loop does not spend
        t = time.perf_counter()
        weights = workload.equal_weights(view, params)
        rule[-1] += time.perf_counter() - t
        return weights

    for _ in range(args.repeat):
        rule.append(0.0)
        t = time.perf_counter()
        result = run_backtest(panel, params, timed_rule)
        ours.append(time.perf_counter() - t)
        final["ours"] = float(result.runtime_log["value"].iloc[-1])
        t = time.perf_counter()
        final["bare"] = bare_loop(panel, params)
        bare.append(time.perf_counter() - t)
    days = len(result.runtime_log)
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"{days} heartbeats x {len(panel.tickers)} tickers, equal weights, monthly, costs and "
          f"volume caps on; median of {args.repeat}")  # fmt: skip
    print(
        f"ours: {statistics.median(ours):.3f} s (best {min(ours):.3f}); final value {final['ours']:,.2f}"
    )
    print(
        f"bare: {statistics.median(bare):.3f} s (best {min(bare):.3f}); final value {final['bare']:,.2f}"
    )
    print(f"ratio ours / bare: {ratio:.2f} (goal: 1.5 or less)")
    print(
        f"of ours, the rule's own time (view.universe and a pandas Series; median): "
        f"{statistics.median(rule):.3f} s. The bare loop has no rule to call, no weights to "
        "validate, no trade, cash or daily records and no invariant checks"
    )


if __name__ == "__main__":
    main()
