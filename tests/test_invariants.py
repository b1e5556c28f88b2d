"""Correctness invariants of the whole chain datalog -> datasets -> panel -> view -> engine:
no look-ahead, no survivorship bias, no stale prices."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data import datasets
from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log
from equity_backtest.data.panel import load_panel
from equity_backtest.data.vendors import simulated
from equity_backtest.engine.clock import heartbeat_range
from equity_backtest.engine.comparison import index_returns
from equity_backtest.engine.loop import run_backtest
from tests.conftest import SMALL, panel_of, params_for

CUT = pd.Timestamp("2012-06-15")


def peeking_strategy(view, params):
    """Uses every part of the view (fundamentals, history, returns, market, holdings), so any
    future data leaking into it would change its weights."""
    u = view.universe
    f = view.fundamentals(["total_equity", "net_income", "total_assets"], tickers=u)
    mk = view.market(u)
    hist = view.history("close", 60, tickers=u)
    mom = hist.iloc[-1] / hist.iloc[0] - 1
    vol = view.returns(40, tickers=u).std()
    score = (
        (f["total_equity"] / mk["market_cap"]).rank()
        + mom.rank()
        - vol.rank()
        + (f["net_income"] / f["total_assets"]).rank()
    )
    score = score + 0.01 * view.weights.reindex(u).fillna(0)
    top = score.dropna().sort_values(kind="stable").index[-8:]
    return pd.Series(1 / 8, index=top)


def _perturb_after(datalog, cut: pd.Timestamp) -> None:
    """Change every price, volume, fundamental and corporate action dated after `cut`, and delete
    the constituent lists dated after it. Perturbed logs get new names with a later timestamp
    (the latest query wins), the way a vendor's revised data would arrive."""
    rng = np.random.default_rng(0)
    for name, path in list_logs(datalog):
        frame = read_log(path, name)
        if name.data_type == "constituent_list":
            if frame["date"].iloc[0] > cut:
                path.unlink()
            continue
        if name.data_type == "ticker_market_data":
            late = frame["date"] > cut
            for col in ("open", "high", "low", "close", "volume", "market_cap"):
                frame.loc[late, col] *= rng.uniform(0.3, 3.0, late.sum())
        elif name.data_type == "ticker_fundamental_data":
            late = frame["announcement_date"] > cut
            for col in frame.columns[2:]:
                frame.loc[late, col] *= rng.uniform(-2.0, 3.0, late.sum())
        elif name.data_type == "corporate_actions":
            late = frame["date"] > cut
            frame.loc[late, "value"] *= rng.uniform(0.5, 2.0, late.sum())
        else:
            continue
        if late.any():
            path.unlink()
            write_log(
                datalog, LogName(name.timestamp, name.source, name.data_type, name.label), frame
            )


def _until(frame: pd.DataFrame, cut) -> pd.DataFrame:
    """Rows up to `cut`; categorical tickers as plain text (the two panels' categories differ)."""
    frame = frame[frame["date"] <= cut].reset_index(drop=True)
    return frame.astype(
        {c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    )


@pytest.mark.parametrize("rebalance", ["weekly", "daily"])
def test_no_look_ahead_changing_data_after_d_changes_nothing_up_to_d(
    tmp_path, small_store, rebalance
):
    results = []
    for variant in ("original", "perturbed"):
        root = tmp_path / variant
        shutil.copytree(small_store / "datalog", root / "datalog")
        if variant == "perturbed":
            _perturb_after(root / "datalog", CUT)
        datasets.build(root / "datalog", root / "datasets")
        params = params_for(root, rebalance=rebalance, commission_min=1.0, volume_cap=0.05)
        panel = load_panel(params)
        results.append((run_backtest(panel, params, peeking_strategy), panel))
    (a, pa_), (b, pb) = results
    assert len(pa_.tickers) > len(pb.tickers)  # the later lists (and their new members) are gone
    assert len(_until(a.trades, CUT)) > 20
    for table in ("runtime_log", "trades", "cash_ledger", "positions", "target_weights"):
        pd.testing.assert_frame_equal(
            _until(getattr(a, table), CUT), _until(getattr(b, table), CUT)
        )
    # ...and the perturbation did change what came after
    assert not a.runtime_log["value"].equals(b.runtime_log["value"])
    t0, _ = heartbeat_range(pa_.dates, pa_.dates[0], CUT)
    t1 = pa_.day(CUT)
    pd.testing.assert_series_equal(index_returns(pa_, t0, t1), index_returns(pb, t0, t1))


@pytest.fixture
def big_market(default_market):
    return default_market


def _bankrupt_member(market):
    """A bankruptcy of a ticker that was an index member in the month before it was delisted."""
    ev = market.events[market.events["event"] == "bankruptcy"]
    cons = market.constituents
    for _, row in ev.iterrows():
        lists = cons[
            (cons["date"] < row["date"]) & (cons["date"] >= row["date"] - pd.Timedelta(days=62))
        ]
        if row["ticker"] in set(lists["ticker"]):
            return row
    raise AssertionError("no bankrupt index member in this simulated market")


def _around_bankruptcy(market, days_before: int, days_after: int, source=None):
    """(event row, start day, panel) for a window around a bankrupt index member's delisting;
    `source` is the market to build the panel from (default: the same market)."""
    row = _bankrupt_member(market)
    start = row["date"] - pd.Timedelta(days=days_before)
    end = (row["date"] + pd.Timedelta(days=days_after)).date()
    return row, start, panel_of(source or market, start=start.date(), end=end)


def test_bankrupt_member_hurts_a_portfolio_that_held_it(big_market):
    row, start, panel = _around_bankruptcy(big_market, 75, 30)
    ticker, delist_day = row["ticker"], row["date"]

    def hold_it(view, params):
        return (
            pd.Series({ticker: 0.95})
            if ticker in view.universe or ticker in view.holdings
            else None
        )

    params = panel_params(panel, start, delist_day, rebalance="never")
    result = run_backtest(panel, params, hold_it)
    rl = result.runtime_log.set_index("date")
    assert rl["value"].iloc[-1] < 0.25 * params.starting_cash  # the loss shows
    closing = result.trades[result.trades["reason"] == "delisting"]
    assert closing["ticker"].tolist() == [ticker] and closing["date"].iloc[0] == delist_day
    assert closing["price"].iloc[0] == pytest.approx(row["value"])  # closed at the recovery value
    assert result.positions[
        result.positions["date"] >= delist_day
    ].empty  # never held at a stale price
    # the index holds it too: point in time, its slide and recovery value are in the benchmark
    window = heartbeat_range(panel.dates, start, delist_day)
    t, i = panel.day(delist_day), list(panel.tickers).index(ticker)
    assert panel.total_return[t, i] == pytest.approx(row["value"] / panel.mark[t - 1, i] - 1)
    with_it = (1 + index_returns(panel, *window)).prod()
    panel.total_return[:, i] = 0.0
    assert with_it < (1 + index_returns(panel, *window)).prod()


def panel_params(panel, start, end, **kw) -> Parameters:
    """Parameters for an in-memory panel run from `start` to a month after `end`."""
    return Parameters(
        **{
            **SMALL,
            "index": panel.index,
            "start": pd.Timestamp(start).date(),
            "end": (pd.Timestamp(end) + pd.Timedelta(days=30)).date(),
            "commission_min": 0.0,
            **kw,
        }
    )


def test_a_series_that_stops_without_a_delisting_record_is_closed_at_its_last_price(big_market):
    ticker = _bankrupt_member(big_market)["ticker"]
    ca = big_market.corporate_actions
    unrecorded = ca[~((ca["ticker"] == ticker) & (ca["action"] == "delisting"))]
    stripped = simulated.SimulatedMarket(**{**big_market.__dict__, "corporate_actions": unrecorded})
    row, start, panel = _around_bankruptcy(big_market, 75, 30, source=stripped)
    params = panel_params(panel, start, row["date"], rebalance="never")
    result = run_backtest(panel, params, lambda v, p: pd.Series({ticker: 0.5}))
    closing = result.trades[result.trades["reason"] == "delisting"]
    last_close = big_market.prices[big_market.prices["ticker"] == ticker]["close"].iloc[-1]
    assert closing["ticker"].tolist() == [ticker]
    assert closing["price"].iloc[0] == pytest.approx(last_close)
    assert result.positions[result.positions["date"] >= row["date"]].empty


def test_delisted_member_leaves_the_universe_and_the_index_at_once(big_market):
    row, start, panel = _around_bankruptcy(big_market, 40, 20)
    ticker, delist_day = row["ticker"], row["date"]
    i = list(panel.tickers).index(ticker)
    t = panel.day(delist_day)
    assert panel.list_of_day[t] == panel.list_of_day[t - 1]  # no new list in between...
    assert (
        panel.members(t - 1)[i] and not panel.members(t)[i]
    )  # ...yet it left on the delisting day

    def equal_weight(view, params):
        return pd.Series(1.0 / len(view.universe), index=view.universe)

    params = panel_params(panel, start, delist_day, rebalance="daily", commission_min=0.0)
    result = run_backtest(panel, params, equal_weight)  # must not try to weight the dead ticker
    assert result.status == "completed"
    assert result.positions[
        (result.positions["ticker"] == ticker) & (result.positions["date"] >= delist_day)
    ].empty
