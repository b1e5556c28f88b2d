"""E2, D6: the panel's as-of structures and the point-in-time view handed to compute_weights."""

import numpy as np
import pandas as pd
import pytest

from equity_backtest.data.panel import load_panel
from equity_backtest.data.vendors import simulated
from equity_backtest.engine.view import View
from equity_backtest.infra.storage import atomic_write_text
from tests.conftest import panel_of, params_for, small_settings


@pytest.fixture(scope="module")
def market():
    return simulated.simulate(small_settings())


def _view(panel, date, shares=None, cash=1e6):
    t = panel.day(pd.Timestamp(date))
    return View(panel, t, np.zeros(len(panel.tickers)) if shares is None else shares, cash, 60)


def test_fundamental_invisible_the_day_before_its_announcement_and_visible_on_it(market):
    panel = panel_of(market)
    f = market.fundamentals
    row = f[f["announcement_date"].isin(panel.dates) & f["ticker"].isin(panel.tickers)].iloc[40]
    ticker, day = row["ticker"], row["announcement_date"]
    before = panel.dates[panel.dates < day][-1]
    seen_before = (
        _view(panel, before).fundamentals(["revenue"], tickers=[ticker])["revenue"].iloc[0]
    )
    seen_on = _view(panel, day).fundamentals(["revenue"], tickers=[ticker])["revenue"].iloc[0]
    assert seen_on == pytest.approx(row["revenue"])
    assert seen_before != pytest.approx(row["revenue"])


def test_without_announcement_dates_the_lag_rule_applies(market):
    no_dates = market.fundamentals.assign(announcement_date=pd.NaT)
    lagged = simulated.SimulatedMarket(**{**market.__dict__, "fundamentals": no_dates})
    panel = panel_of(lagged, fundamental_lag_days={"default": 45, "revenue": 90})
    row = market.fundamentals.iloc[50]
    ticker, period_end = row["ticker"], row["period_end"]
    for metric, lag in (("revenue", 90), ("ebit", 45)):
        public = period_end + pd.Timedelta(days=lag)
        first = panel.dates[panel.dates >= public][0]
        before = panel.dates[panel.dates < public][-1]
        assert _view(panel, first).fundamentals([metric], tickers=[ticker])[metric].iloc[
            0
        ] == pytest.approx(row[metric])
        assert _view(panel, before).fundamentals([metric], tickers=[ticker])[metric].iloc[
            0
        ] != pytest.approx(row[metric])


def test_universe_is_the_latest_list_on_or_before_the_day(market):
    panel = panel_of(market)
    cons = market.constituents
    dates = sorted(cons["date"].unique())
    list_day = pd.Timestamp(dates[10])
    assert set(_view(panel, list_day).universe) == set(cons[cons["date"] == list_day]["ticker"])
    day_before = panel.dates[panel.dates < list_day][-1]
    assert set(_view(panel, day_before).universe) == set(cons[cons["date"] == dates[9]]["ticker"])


def test_view_is_read_only_and_sees_nothing_after_its_date(market):
    panel = panel_of(market)
    v = _view(panel, "2012-03-15")
    hist = v.history("close", 30)
    assert hist.index[-1] == pd.Timestamp("2012-03-15") and len(hist) == 30
    hist.iloc[:, :] = -1.0
    snapshot = v.market()
    snapshot["close"] = 0.0
    assert np.nanmin(panel.mark) > 0  # the panel is untouched
    assert _view(panel, "2012-03-15").history("close", 30).iloc[-1].min() > 0


def test_returns_are_split_and_dividend_proof(default_market):
    market = default_market
    panel = panel_of(market)
    ca = market.corporate_actions
    split = ca[(ca["action"] == "split") & ca["date"].isin(panel.dates)]
    assert len(split) >= 3
    row = split.iloc[2]
    v = _view(panel, row["date"])
    r = v.returns(5, tickers=[row["ticker"]])[row["ticker"]].iloc[-1]
    close = market.prices.set_index(["ticker", "date"])["close"].loc[row["ticker"]]
    prev = close[close.index < row["date"]].iloc[-1]
    assert r == pytest.approx(close.loc[row["date"]] * row["value"] / prev - 1)
    assert abs(r) < 0.5  # not the raw price drop of a split


def test_panel_from_files_equals_panel_in_memory(small_store, market):
    a = load_panel(params_for(small_store))
    b = panel_of(market)
    assert list(a.tickers) == list(b.tickers) and a.dates.equals(b.dates)
    np.testing.assert_allclose(
        a.mark, b.mark, rtol=1e-9
    )  # CSV round trip keeps 10 significant digits
    assert a.membership.tolist() == b.membership.tolist()


def test_atomic_write_replaces_or_keeps(tmp_path):
    path = tmp_path / "f.txt"
    assert atomic_write_text(path, "one") and path.read_text() == "one"
    assert atomic_write_text(path, "two") and path.read_text() == "two"
    assert not atomic_write_text(path, "three", overwrite=False) and path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_files_written_together_are_each_placed_whole_or_kept(tmp_path):
    """atomic_write_many: new files are placed, an existing one is kept with overwrite=False
    (and replaced without), files in a new folder too, and no temp file is left behind."""
    from equity_backtest.infra.storage import atomic_write_many

    (tmp_path / "b.csv").write_bytes(b"old")
    files = [(tmp_path / "a.csv", b"a" * 100_001), (tmp_path / "b.csv", b"new"),
             (tmp_path / "sub" / "c.csv", b"")]  # fmt: skip
    assert atomic_write_many(files, overwrite=False) == [True, False, True]
    assert (tmp_path / "a.csv").read_bytes() == b"a" * 100_001
    assert (tmp_path / "b.csv").read_bytes() == b"old"
    assert (tmp_path / "sub" / "c.csv").read_bytes() == b""
    assert atomic_write_many(files[1:2]) == [True] and (tmp_path / "b.csv").read_bytes() == b"new"
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["a.csv", "b.csv", "c.csv"]


def test_a_failed_write_of_many_leaves_no_temp_file_and_no_half_file(tmp_path):
    from equity_backtest.infra.storage import atomic_write_many

    with pytest.raises(TypeError):
        atomic_write_many([(tmp_path / "a.csv", b"fine"), (tmp_path / "b.csv", "not bytes")])
    assert list(tmp_path.iterdir()) == []


def test_fundamentals_history_shows_the_last_public_periods(market):
    panel = panel_of(market)
    day = pd.Timestamp("2012-08-15")
    v = _view(panel, day)
    hist = v.fundamentals_history("revenue", 4)
    ticker = hist["ticker"].iloc[0]
    f = market.fundamentals
    public = (
        f[(f["ticker"] == ticker) & (f["announcement_date"] <= day)]
        .sort_values("period_end")
        .tail(4)
    )
    mine = hist[hist["ticker"] == ticker].sort_values("lag", ascending=False)
    assert mine["period_end"].tolist() == public["period_end"].tolist()
    assert np.allclose(mine["value"], public["revenue"]) and mine["lag"].tolist() == [3, 2, 1, 0]
    assert (hist.groupby("ticker").size() <= 4).all()
    assert v.fundamentals_history("no_such_metric").empty


def test_split_adjusted_history_restates_past_prices_point_in_time():
    """A 4:1 split on day 5: before it, closes near 128 read as 32 in today's shares; a view
    dated before the split never sees it (no look-ahead)."""
    from equity_backtest.engine.view import View
    from tests.test_engine_features import tiny_panel

    closes = [128.0, 128.5, 129.0, 129.5, 130.0, 32.6, 32.7, 32.8, 33.0, 33.1, 33.2, 33.3]
    panel, _ = tiny_panel(
        {"AAA": [(c, c, c, c) for c in closes], "BBB": [(10, 10, 10, 10)] * 12},
        actions=[("AAA", 5, "split", 4.0)],
    )
    after = View(panel, 9, np.zeros(2), 1e4, 260)
    adjusted = after.history("close", days=10, tickers=["AAA"], split_adjusted=True)["AAA"]
    assert adjusted.iloc[:5].tolist() == [c / 4 for c in closes[:5]]
    assert adjusted.iloc[5:].tolist() == closes[5:10]
    assert after.history("close", days=10, tickers=["AAA"])["AAA"].iloc[0] == 128.0  # raw
    volume = after.history("volume", days=10, tickers=["AAA"], split_adjusted=True)["AAA"]
    assert volume.iloc[0] == 4e6 and volume.iloc[6] == 1e6
    before = View(panel, 4, np.zeros(2), 1e4, 260)
    assert (
        before.history("close", tickers=["AAA"], split_adjusted=True)["AAA"].tolist() == closes[:5]
    )
