"""First contact (A3, D12+): a single-instrument file or a basket without an index runs without
a constituent file, the benchmark is called what it is, and settings that silently cut or thin
the data, or leave cash idle, are said once."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil

import pandas as pd
import pytest

from equity_backtest import api
from equity_backtest.data import datasets
from equity_backtest.data.panel import load_panel
from equity_backtest.data.vendors import files
from tests.conftest import REPO, params_for

TICKER = "DKYN"  # the ticker in samples/ohlcv_one_ticker.csv (mappings/ohlcv_one_ticker.toml)


@pytest.fixture(scope="module")
def one_stock(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_stock")
    files.query(
        REPO / "mappings" / "ohlcv_one_ticker.toml",
        REPO / "samples" / "ohlcv_one_ticker.csv",
        root / "datalog",
    )
    datasets.build(root / "datalog", root / "datasets")
    return root


def _params(root, **kw):
    kw = {"rebalance": "daily", "algorithm": str(REPO / "strategies" / "equal_weight.py"), **kw}
    return params_for(root, source="files", start=dt.date(2019, 1, 2), end=dt.date(2022, 12, 30),
                      **kw)  # fmt: skip


def test_a_single_stock_file_runs_with_index_all_and_its_own_benchmark(one_stock):
    params = _params(one_stock, index="ALL", benchmark=TICKER)
    run = api.backtest(params)
    assert run.status == "completed"
    assert set(run.positions["ticker"].astype(str)) == {TICKER}
    metrics = run.metrics
    assert metrics["benchmark_label"] == TICKER
    sheet = (run.folder / "tearsheet.html").read_text()
    assert f"Against the benchmark ({TICKER})" in sheet and "<th>Index</th>" not in sheet
    # fully invested in the one stock, it is the benchmark up to costs and the cash buffer
    assert abs(metrics["portfolio"]["annual_return"] - metrics["benchmark"]["annual_return"]) < 0.01


def test_without_constituent_lists_every_priced_ticker_is_the_universe_with_one_notice(
    one_stock, caplog
):
    from equity_backtest.data import panel_cache

    shutil.rmtree(one_stock / "datasets" / panel_cache.FOLDER, ignore_errors=True)
    with caplog.at_level(logging.WARNING):
        panel = load_panel(_params(one_stock))  # index = TOP20, which this source lacks
    notices = [
        r for r in caplog.records if "no constituent lists for source 'files'" in r.getMessage()
    ]
    assert len(notices) == 1 and 'as index = "ALL"' in notices[0].getMessage()
    assert list(panel.tickers) == [TICKER] and panel.members(len(panel.dates) - 1).all()


def test_a_typo_in_the_index_name_is_still_an_error_where_lists_exist(tmp_path, small_store):
    from equity_backtest.errors import BadInputError

    with pytest.raises(
        BadInputError, match="no constituent lists for source 'simulated' and index 'TOP2'"
    ):
        load_panel(params_for(small_store, index="TOP2", panel_cache=False))


def test_the_index_is_named_as_the_benchmark(small_store, tmp_path):
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    run = api.backtest(params_for(tmp_path))
    assert run.metrics["benchmark_label"] == "TOP20 index"
    assert "Against the benchmark (TOP20 index)" in (run.folder / "tearsheet.html").read_text()


def test_settings_that_leave_data_unused_or_cash_idle_are_said(small_store, tmp_path):
    """A start more than a year after the data's start plus the lookback, and a portfolio that
    keeps a tenth of its value in cash earning nothing, each give one warning in run.json; with
    cash earning interest the second is not given."""
    shutil.copytree(small_store / "datasets", tmp_path / "datasets")
    params = params_for(tmp_path, start=dt.date(2012, 6, 1), lookback_days=20, cash_buffer=0.1)
    warnings = json.loads((api.backtest(params).folder / "run.json").read_text())["warnings"]
    late = [w for w in warnings if "leaves out" in w]
    assert len(late) == 1 and "set start earlier" in late[0]
    cash = [w for w in warnings if "in cash on average" in w]
    assert len(cash) == 1 and "cash_interest = True" in cash[0]
    quiet = api.backtest(params.replace(cash_interest=True, start=dt.date(2011, 1, 3)))
    warnings = json.loads((quiet.folder / "run.json").read_text())["warnings"]
    assert not [w for w in warnings if "in cash on average" in w or "leaves out" in w]


def test_the_quality_report_counts_the_lists_in_force(tmp_path):
    """One constituent list given once is in force in every later month (as the engine uses
    it), so the report's coverage does not say 0 members after the first month."""
    from equity_backtest.data.datalog import LogName, write_log

    log = tmp_path / "datalog"
    days = pd.bdate_range("2020-01-01", "2020-04-30")
    base = 1_600_000_000_000_000
    write_log(log, LogName(base, "files", "constituent_list", "20200101_ONE"),
              pd.DataFrame({"date": [days[0]] * 2, "index": "ONE", "ticker": ["AAA", "BBB"],
                            "weight": [0.5, 0.5]}))  # fmt: skip
    for k, t in enumerate(("AAA", "BBB")):
        bars = pd.DataFrame({"date": days, "open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0,
                             "volume": 1e5, "market_cap": 1e9})  # fmt: skip
        write_log(log, LogName(base + 1 + k, "files", "ticker_market_data", t), bars)
    result = datasets.build(log, tmp_path / "datasets")
    report = json.loads(
        (tmp_path / "datasets" / result.version / "quality_report.json").read_text()
    )
    coverage = report["sources"][0]["coverage_by_month"]
    assert [row["index_members"] for row in coverage] == [2, 2, 2, 2]
    assert [row["members_with_market_data"] for row in coverage] == [2, 2, 2, 2]


def test_a_daily_rule_asked_monthly_is_said_once_and_not_when_asked_daily(one_stock):
    """examples/sma_cross.py declares REBALANCE = "daily"; asked monthly it acts on one bar in
    21 (another strategy), which the run says once with what to set."""
    rule = str(REPO / "examples" / "sma_cross.py")
    monthly = api.backtest(_params(one_stock, algorithm=rule, rebalance="monthly",
                                   index="ALL", benchmark=TICKER))  # fmt: skip
    said = [w for w in monthly.info["warnings"] if "REBALANCE" in w]
    assert len(said) == 1 and "--set rebalance=daily" in said[0]
    daily = api.backtest(_params(one_stock, algorithm=rule, index="ALL", benchmark=TICKER))
    assert not [w for w in daily.info["warnings"] if "REBALANCE" in w]
    # a rule that declares nothing is never warned about
    plain = api.backtest(_params(one_stock, index="ALL", rebalance="monthly", benchmark=TICKER))
    assert not [w for w in plain.info["warnings"] if "REBALANCE" in w]
