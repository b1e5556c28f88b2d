"""E1, D6: the dense panel built part by part and on threads equals the plain pandas reading of
the same tables: market fields pivoted by (date, ticker), fundamentals grouped by metric and
sorted by (ticker, period end, public day), the volatility as one rolling window over the whole
frame. Each reference below is the obvious pandas code, written here, not the panel's."""

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data import datasets
from equity_backtest.data.panel import panel_from_tables
from equity_backtest.data.quality import MAX_PLAUSIBLE_PRICE
from equity_backtest.data.vendors import simulated
from tests.conftest import SMALL, panel_of, small_settings


@pytest.fixture(scope="module")
def market():
    return simulated.simulate(small_settings())


def _reference_fundamentals(fund, src, tickers, dates, lags, later_days=0):
    """Per metric (sorted by name): the source's rows of these tickers, public at the
    announcement or at the period end plus the metric's lag, sorted stably by ticker, period
    end and public day."""
    code = {t: i for i, t in enumerate(tickers)}
    fund = fund[(fund["source"] == src) & fund["ticker"].isin(code)].dropna(subset=["metric"])
    out = {}
    for metric, grp in fund.groupby("metric", sort=True, observed=True):
        lag = pd.Timedelta(days=lags.get(metric, lags["default"]))
        public = grp["announcement_date"].fillna(grp["period_end"] + lag)
        public = public + pd.Timedelta(days=later_days)
        out[str(metric)] = pd.DataFrame(
            {
                "ticker": grp["ticker"].map(code).to_numpy(np.int64),
                "period_end": grp["period_end"].to_numpy(),
                "public_day": dates.searchsorted(public.to_numpy()),
                "value": grp["value"].to_numpy(float),
            }
        ).sort_values(["ticker", "period_end", "public_day"], kind="stable")
    return out


def _assert_fundamentals_equal(panel, reference):
    assert list(panel.fundamentals) == list(reference)
    for metric, frame in reference.items():
        got = panel.fundamentals[metric]
        for column in frame.columns:
            np.testing.assert_array_equal(getattr(got, column), frame[column].to_numpy())


def _messy_fundamentals(fund: pd.DataFrame, rng) -> pd.DataFrame:
    """The simulated reports with what real ones have: restatements (a second value for the
    same ticker, period and metric, announced later), reports without an announcement date,
    rows of another source and of tickers outside the index, a row without a metric."""
    fund = fund.copy()
    fund.loc[rng.random(len(fund)) < 0.3, "announcement_date"] = pd.NaT
    restated = fund.sample(200, random_state=1).copy()
    restated["announcement_date"] = restated["announcement_date"] + pd.Timedelta(days=100)
    restated["value"] *= 1.1
    other = fund.sample(100, random_state=2).assign(source="elsewhere")
    stranger = fund.sample(50, random_state=3).assign(ticker="NOT_A_MEMBER")
    no_metric = fund.sample(5, random_state=4).assign(metric=None)
    return pd.concat([fund, restated, other, stranger, no_metric], ignore_index=True)


@pytest.mark.parametrize("order", ["as simulated", "table order", "shuffled"])
@pytest.mark.parametrize("encoded", [False, True])
def test_fundamentals_equal_pandas_group_and_sort(market, order, encoded):
    """Whatever the row order (the builder's table order takes the panel's fast path, the others
    its full sort) and whether text columns are dictionary-encoded (as read from a dataset),
    each metric's series equals the pandas reference, restatements and undated reports
    included."""
    rng = np.random.default_rng(5)
    fund = _messy_fundamentals(market.tables()["fundamentals"], rng)
    if order == "table order":
        fund = fund.sort_values(["source", "ticker", "period_end", "announcement_date", "metric"])
    elif order == "shuffled":
        fund = fund.sample(frac=1.0, random_state=6)
    fund = fund.reset_index(drop=True)
    if encoded:
        fund = fund.astype({c: "category" for c in ("source", "ticker", "metric")})
    lags = {"default": 45, "revenue": 90}
    tables = {**market.tables(), "fundamentals": fund}
    panel = panel_of_tables(market, tables, fundamental_lag_days=lags)
    reference = _reference_fundamentals(fund, panel.source, panel.tickers, panel.dates, lags)
    assert sum(len(f) for f in reference.values()) > 1000
    _assert_fundamentals_equal(panel, reference)


def panel_of_tables(market, tables, **kw):
    s = market.settings
    params = Parameters(**{**SMALL, "index": s.index_name, "start": s.start, "end": s.end, **kw})
    return panel_from_tables("in-memory", tables, params)


def test_volatility_equals_one_rolling_window_over_the_whole_frame(market):
    """The volatility is computed a block of tickers at a time on threads: it must equal, bit
    for bit, pandas' rolling standard deviation of the whole frame of returns, a day later."""
    panel = panel_of(market)
    wide = np.tile(panel.total_return, (1, 3))  # more tickers than one block holds
    panel.total_return = wide
    for days in (5, 20):
        expected = pd.DataFrame(wide).rolling(days, min_periods=2).std().shift(1).to_numpy()
        got = panel.volatility(days)
        assert got.tobytes() == expected.tobytes()


def test_market_fields_equal_the_pivot_of_the_stored_parts(small_store):
    """Read part by part from a dataset's year parts, with an end date inside the data: each
    market field equals the table pivoted by (date, ticker) over the members, up to the end."""
    version, whole = datasets.load_tables(small_store / "datasets")
    _, lazy = datasets.load_tables(small_store / "datasets", version, by_column=("market",))
    market = whole["market"]
    end = pd.Timestamp(market["date"].quantile(0.6)).normalize()
    spec = Parameters(**{**SMALL, "end": end.date()}, datasets_dir=str(small_store / "datasets"))
    panel = panel_from_tables(version, lazy, spec)
    assert panel.dates[-1] <= end < market["date"].max()
    rows = market[(market["source"] == spec.source) & market["ticker"].isin(panel.tickers)]
    rows = rows[rows["date"] <= end].astype({"ticker": object})
    for field in ("open", "close", "volume", "market_cap"):
        pivot = rows.pivot(index="date", columns="ticker", values=field)
        pivot = pivot.reindex(index=panel.dates, columns=list(panel.tickers))
        if field in ("open", "close"):  # (implausible prices are dropped by the panel)
            pivot = pivot.where((pivot > 0) & (pivot <= MAX_PLAUSIBLE_PRICE))
        np.testing.assert_array_equal(panel.fields[field], pivot.to_numpy())


@pytest.mark.parametrize(
    "keys, expected",
    [
        (([0, 0, 1], [1, 2, 0]), True),
        (([0, 0, 0], [1, 1, 1]), True),  # ties keep the table's order
        (([0, 0, 1], [2, 1, 0]), False),  # a less significant key falls within a tie
        (([0, 1, 0], [0, 1, 2]), False),  # the most significant key falls, the next rises
        (([0, 0], [5, 6], [3, 1]), True),
        (([0, 0], [5, 5], [3, 1]), False),
        (([0],), True),
    ],
)
def test_the_fast_path_takes_only_rows_already_in_key_order(keys, expected):
    """The panel keeps the builder's row order of fundamentals only where it is the order of
    (metric, ticker, period end, public day); a missing date is never taken as in order."""
    from equity_backtest.data.datalog.checks import in_key_order

    assert in_key_order([np.array(k) for k in keys], strict=False) is expected
    nat = np.array(["2020-01-01", "NaT"], dtype="datetime64[ns]")
    assert in_key_order([np.zeros(2, int), nat], strict=False) is False
