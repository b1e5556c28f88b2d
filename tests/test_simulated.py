"""D2: the simulated market is deterministic, carries what later stages need, and plants premia."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data import calendars, datasets
from equity_backtest.data.vendors import simulated
from equity_backtest.data.vendors.simulated import logs as sim_logs
from tests.conftest import panel_of, small_settings, tree_digest


@pytest.fixture(scope="module")
def market():
    return simulated.simulate(simulated.SimulationSettings(seed=11))  # 300 tickers, 2005-2024


def test_same_seed_byte_identical_logs_whatever_the_date(tmp_path, small_store):
    simulated.query(small_settings(), tmp_path / "again")
    assert tree_digest(tmp_path / "again") == tree_digest(small_store / "datalog")
    # the 'query time' in the names is derived from the settings, never from the clock
    names = sorted(p.name for p in (tmp_path / "again").iterdir())
    assert names[0].startswith(str(simulated.query_timestamp_base(small_settings())))


def test_rerun_writes_nothing_new_and_other_seed_differs(tmp_path, small_store):
    counts = simulated.query(small_settings(), small_store / "datalog")
    assert counts["written"] == 0 and counts["already_logged"] > 0
    simulated.query(small_settings(seed=8), tmp_path / "other")
    assert tree_digest(tmp_path / "other") != tree_digest(small_store / "datalog")


def test_market_has_churn_delistings_splits_dividends(market):
    cons = market.constituents
    lists = [set(g["ticker"]) for _, g in cons.groupby("date")]
    assert len(lists) == 240 and all(len(s) == 100 for s in lists)
    churn = [len(a - b) for a, b in zip(lists[1:], lists[:-1], strict=False)]
    assert sum(churn) > 50  # membership changes over time
    ev = market.events["event"].value_counts()
    assert (
        ev["bankruptcy"] >= 10
        and ev["takeover"] >= 10
        and ev["ipo"] >= 50
        and ev["bear market"] == 1
    )
    ca = market.corporate_actions["action"].value_counts()
    assert (
        ca["split"] >= 5
        and ca["dividend"] >= 1000
        and ca["delisting"] == ev["bankruptcy"] + ev["takeover"]
    )
    bankrupt = set(market.events.loc[market.events.event == "bankruptcy", "ticker"])
    assert bankrupt & set(cons["ticker"])  # some index members go bankrupt
    assert market.metadata["sector"].nunique() == 11


def test_the_market_trades_on_the_exchange_calendar():
    """NYSE by default: no Good Friday, no Hurricane Sandy closure, half days trade on less volume;
    another exchange is another calendar."""
    market = simulated.simulate(small_settings())
    days = set(market.calendar)
    for closed in ("2012-04-06", "2012-10-29", "2012-10-30", "2011-07-04", "2013-12-25"):
        assert pd.Timestamp(closed) not in days
    assert pd.Timestamp("2012-08-27") in days  # a London bank holiday, not a New York one
    assert set(market.prices["date"]) == days  # every price row is on a session
    volume = market.prices.pivot(index="date", columns="ticker", values="volume").median(axis=1)
    half = volume.index.isin(calendars.early_closes("XNYS", "2010-01-01", "2013-12-31"))
    assert half.sum() >= 8 and volume[half].median() < 0.8 * volume[~half].median()
    london = simulated.trading_calendar(dt.date(2012, 8, 20), dt.date(2012, 8, 31), "XLON")
    assert pd.Timestamp("2012-08-27") not in london and len(london) == 9


def test_the_markets_own_regimes_reach_the_dataset(small_store):
    """The simulator's episodes (the tear sheet's stress events on simulated data) are logged
    and built like any other table, exactly as planted."""
    market = simulated.simulate(small_settings())
    _, tables = datasets.load_tables(small_store / "datasets")
    built = tables["regimes"].drop(columns=["source", "log_ts"])
    expected = market.regimes.assign(market_return=lambda f: f["market_return"].map(float))
    pd.testing.assert_frame_equal(
        built.astype({"regime": object}).reset_index(drop=True),
        expected[built.columns].astype({"regime": object}),
        check_exact=False,
        rtol=1e-9,
    )
    assert {"bear market", "recovery"} <= set(built["regime"])
    # each episode moves the market factor by what it planted (the noise is demeaned within it)
    for row in market.regimes[market.regimes["regime"] == "bear market"].itertuples():
        assert -0.44 <= row.market_return <= -0.36


def test_bankruptcy_loses_most_value_and_takeover_pays_a_premium(market):
    ev = market.events.set_index("ticker")
    prices = market.prices.set_index(["ticker", "date"])["close"]
    for kind, check in (
        ("bankruptcy", lambda last, val: val <= 0.15 * last),
        ("takeover", lambda last, val: val >= 1.0 * last),
    ):
        for ticker, row in ev[ev.event == kind].iterrows():
            last = prices.loc[ticker].iloc[-1]
            assert prices.loc[ticker].index.max() < row["date"]  # no trading on or after delisting
            assert check(last, row["value"]), (kind, ticker, last, row["value"])


def test_fundamentals_announced_20_to_50_days_after_quarter_end(market):
    f = market.fundamentals
    lag = (f["announcement_date"] - f["period_end"]).dt.days
    assert lag.between(20, 50).all()
    assert (f["period_end"].dt.is_quarter_end).all()
    assert set(simulated.FUNDAMENTAL_METRICS) <= set(f.columns)
    assert (f["total_assets"] > 0).all() and (f["shares_outstanding"] > 0).all()


def _monthly_spread(monthly: pd.DataFrame, signal: pd.DataFrame) -> float:
    """Mean next-month return of the top minus the bottom signal quintile."""
    spreads = []
    for k in range(13, len(monthly) - 1):
        s = signal.iloc[k].dropna()
        r = monthly.iloc[k + 1].reindex(s.index).dropna()
        if len(r) < 50:
            continue
        q = pd.qcut(s[r.index].rank(method="first"), 5, labels=False)
        spreads.append(r[q == 4].mean() - r[q == 0].mean())
    return float(np.mean(spreads))


def test_planted_momentum_value_quality_premia_are_recoverable(market):
    panel = panel_of(market)
    tr = pd.DataFrame(panel.total_return, index=panel.dates, columns=panel.tickers)
    growth = (1 + tr.fillna(0)).groupby(tr.index.to_period("M")).prod()
    alive = tr.notna().groupby(tr.index.to_period("M")).any()
    monthly = (growth - 1).where(alive)
    wealth = growth.cumprod().where(alive)
    assert _monthly_spread(monthly, wealth.shift(1) / wealth.shift(12) - 1) > 0.002  # 12-1 momentum
    f = market.fundamentals.assign(month=market.fundamentals["announcement_date"].dt.to_period("M"))
    caps = pd.DataFrame(panel.fields["market_cap"], index=panel.dates, columns=panel.tickers)
    caps = caps.groupby(caps.index.to_period("M")).last()
    book = f.pivot_table(index="month", columns="ticker", values="total_equity", aggfunc="last")
    book = book.reindex(monthly.index).ffill()
    assert _monthly_spread(monthly, np.log(book / caps)) > 0.0015  # value: book-to-market
    ni = f.pivot_table(index="month", columns="ticker", values="net_income", aggfunc="last")
    ta = f.pivot_table(index="month", columns="ticker", values="total_assets", aggfunc="last")
    assert (
        _monthly_spread(monthly, (ni / ta).reindex(monthly.index).ffill()) > 0.002
    )  # quality: ROA
    assert _monthly_spread(monthly, monthly.rolling(12).std()) < -0.001  # low volatility wins


def test_quoting_to_ten_digits_equals_python_bit_for_bit():
    """The simulated vendor's numpy quoting gives float(f"{v:.10g}") exactly, over every
    magnitude, random bit patterns, ties and the edges of the double range."""
    import numpy as np

    from equity_backtest.data.datalog import quote

    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.standard_normal(200_000) * 10.0 ** rng.integers(-30, 30, 200_000),
            np.exp(rng.normal(3, 2, 200_000)),
            np.round(rng.random(100_000) * 1e6) / 100,
            np.frombuffer(rng.bytes(8 * 100_000), dtype=np.float64),
            [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1.7976931348623157e308, 9999999999.5,
             99999999995.0, 0.5, 2.5, 1e10, 9.9999999995, 1e22, 1e23, 123456789012.0],
        ]
    )  # fmt: skip
    expected = np.array([float(f"{v:.10g}") if np.isfinite(v) else v for v in values.tolist()])
    got = quote(values)
    assert ((got.view(np.int64) == expected.view(np.int64)) | np.isnan(expected)).all()
    grid = values[-200_016:].reshape(-1, 48)  # (a table's shape: the same values, bit for bit)
    same = quote(grid).view(np.int64) == expected[-200_016:].reshape(-1, 48).view(np.int64)
    assert (same | np.isnan(grid)).all()


def test_the_log_writer_raises_a_failing_batch_and_leaves_only_whole_files(tmp_path, market):
    """Batches render and write on several threads: the logs are numbered in the order they
    were handed over, a batch that fails 02's checks raises its error naming the log, and
    every file in the datalog is whole (no temporary file left behind)."""
    from equity_backtest.data.datalog import list_logs, read_log
    from equity_backtest.errors import BadInputError

    base = simulated.query_timestamp_base(market.settings)
    prices = market.prices[market.prices["ticker"].isin(["AAE", "AAMA"])]
    tickers = sorted(set(prices["ticker"]))
    assert len(tickers) == 2, "the fixture's tickers changed: pick two others"
    rows = prices.sort_values(["ticker", "date"]).reset_index(drop=True)
    starts = [0, int((rows["ticker"] == tickers[0]).sum()), len(rows)]
    bad = rows[rows["ticker"] == tickers[0]].drop(columns="ticker").reset_index(drop=True)
    bad.loc[3, "date"] = pd.Timestamp("2031-01-02")  # after the query time
    datalog = tmp_path / "datalog"
    with (
        pytest.raises(
            BadInputError, match=r"__ticker_market_data__ZZZ\.csv, row \d+, field .date."
        ),
        sim_logs._LogWriter(datalog, base, progress=False) as writer,
    ):
        writer.submit("ticker_market_data", tickers, rows.drop(columns="ticker"), starts)
        writer.submit("ticker_market_data", ["ZZZ"], bad)
        for k in range(6):  # (more batches than threads: some are never started)
            writer.submit("ticker_market_data", [f"LATE{k}"], bad.iloc[:3])
    logs = list_logs(datalog)
    assert [n.timestamp for n, _ in logs][:2] == [base, base + 1]  # numbered as handed over
    assert {n.label for n, _ in logs} >= set(tickers) and "ZZZ" not in {n.label for n, _ in logs}
    for name, path in logs:  # whole files, each read back as 02 reads it
        assert len(read_log(path, name)) > 0
    assert not [p for p in datalog.iterdir() if p.name.endswith(".tmp")]
