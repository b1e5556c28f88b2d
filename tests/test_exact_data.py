"""D11, D12, V1+: real-shaped exports come in exactly, or are refused before anything is written;
monthly bars are annualised as monthly; a supplied benchmark is used, a missing one never."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data import datasets, quality
from equity_backtest.data.datalog import LogName, list_logs, read_log, write_log
from equity_backtest.data.frequency import infer
from equity_backtest.data.panel import load_panel
from equity_backtest.data.vendors import files
from equity_backtest.errors import BadInputError
from equity_backtest.evaluation import metrics as m
from tests.conftest import REPO, run_script

AWKWARD = [123456.78901234567, 1e-12, 9.87654321e15, 0.1 + 0.2, 1 / 3, 2.5e-300]


def _mapping(path: Path, body: str, exported: str = "2023-01-03") -> Path:
    path.write_text(f'source = "files"\nexported_at = "{exported}"\n\n[[output]]\n{body}')
    return path


MARKET = (
    'data_type = "ticker_market_data"\nshape = "long"\nticker = "Symbol"\ndate = "Date"\n'
    'date_format = "%Y-%m-%d"\ncolumns = { close = "Close" }\n'
)


def _bits(values) -> np.ndarray:
    return np.asarray(values, dtype=float).view(np.int64)


def test_numbers_round_trip_the_datalog_and_datasets_bit_for_bit(tmp_path):
    rows = "\n".join(
        f"AAA,2020-01-{d + 1:02d},{v!r}" for d, v in enumerate(AWKWARD)
    )  # the shortest repr of each float
    (tmp_path / "in.csv").write_text("Symbol,Date,Close\n" + rows + "\n")
    files.query(_mapping(tmp_path / "m.toml", MARKET), tmp_path / "in.csv", tmp_path / "datalog")
    (name, path), *_ = list_logs(tmp_path / "datalog")
    assert (_bits(read_log(path, name)["close"]) == _bits(AWKWARD)).all()
    datasets.build(tmp_path / "datalog", tmp_path / "datasets")
    _, tables = datasets.load_tables(tmp_path / "datasets")
    assert (_bits(tables["market"]["close"]) == _bits(AWKWARD)).all()
    # byte-reproducible: the same frame renders to the same bytes under another timestamp
    frame = read_log(path, name)
    other = LogName(name.timestamp + 1, "files", name.data_type, "AAA")
    p2, _ = write_log(tmp_path / "datalog", other, frame)
    assert p2.read_bytes() == path.read_bytes()


def test_logs_written_with_ten_digits_stay_readable(tmp_path):
    name = LogName(1577836800000000, "old", "ticker_market_data", "OLD")
    (tmp_path / name.filename).write_text(
        "date,open,high,low,close,volume,market_cap\n2019-12-02,1.234567891,,,1.234567891,100,\n"
    )
    assert read_log(tmp_path / name.filename)["close"].iloc[0] == 1.234567891


def test_a_bad_import_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "in.csv").write_text(
        "Symbol,Date,Close\nAAA,2023-01-02,10\nAAA,2023-06-30,11\n"
    )  # data after the export date
    mapping = _mapping(tmp_path / "m.toml", MARKET)
    with pytest.raises(BadInputError, match=r"in.csv.*row 3, field 'date': 2023-06-30 is after"):
        files.query(mapping, tmp_path / "in.csv", tmp_path / "datalog")
    assert not (tmp_path / "datalog").exists() or not list((tmp_path / "datalog").iterdir())
    (tmp_path / "in.csv").write_text(
        "Symbol,Date,Close\nAAA,2022-01-03,10\nBBB,2022-01-03,5\n\nAAA,2022-01-03,11\n"
    )  # a date repeated; the blank line is counted as the file counts it
    with pytest.raises(BadInputError, match=r"row 5, field 'date'.*first at row 2"):
        files.query(mapping, tmp_path / "in.csv", tmp_path / "datalog")
    assert not (tmp_path / "datalog").exists() or not list((tmp_path / "datalog").iterdir())


@pytest.mark.slow
def test_01_refuses_a_bad_import_with_exit_2_and_writes_nothing(tmp_path):
    shutil.copy(REPO / "01_query_vendor.py", tmp_path)
    (tmp_path / "parameters.py").write_text('source = "files"\n')
    (tmp_path / "in.csv").write_text("Symbol,Date,Close\nAAA,2023-02-01,10\n")
    _mapping(tmp_path / "m.toml", MARKET)
    proc = run_script(tmp_path, "01_query_vendor.py", "--import", "m.toml", "in.csv", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "row 2, field 'date'" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "datalog").glob("*.csv"))


@pytest.mark.parametrize(
    "body, message",
    [
        (MARKET.replace("date_format", "date_fromat"), r"unknown key 'date_fromat' \(did you mean 'date_format'"),
        (MARKET.replace('ticker = "Symbol"\n', ""), r"needs 'ticker' \(the ticker column\) or 'ticker_name'"),
        (MARKET.replace('date = "Date"\n', ""), r"needs 'date'"),
        (MARKET.replace('date_format = "%Y-%m-%d"\n', ""), r"row 2, column 'Date': '02/01/2019' reads as both"),
    ],
)  # fmt: skip
def test_mappings_are_checked(tmp_path, body, message):
    (tmp_path / "in.csv").write_text("Symbol,Date,Close\nAAA,02/01/2019,1\nAAA,03/01/2019,2\n")
    with pytest.raises(BadInputError, match=message):
        files.query(_mapping(tmp_path / "m.toml", body), tmp_path / "in.csv", tmp_path / "dl")


def test_day_first_dates_that_read_one_way_only_are_read_that_way(tmp_path):
    (tmp_path / "in.csv").write_text("Symbol,Date,Close\nAAA,02/01/2019,1\nAAA,13/01/2019,2\n")
    body = MARKET.replace('date_format = "%Y-%m-%d"\n', "")
    files.query(_mapping(tmp_path / "m.toml", body), tmp_path / "in.csv", tmp_path / "dl")
    (name, path), *_ = list_logs(tmp_path / "dl")
    assert list(read_log(path, name)["date"]) == [
        pd.Timestamp("2019-01-02"),
        pd.Timestamp("2019-01-13"),
    ]


def test_a_one_security_file_names_its_ticker_and_exported_at_takes_iso_times(tmp_path):
    (tmp_path / "in.csv").write_text("Date,Close\n2023-01-02,3800.5\n2023-01-03,3810.25\n")
    body = MARKET.replace('ticker = "Symbol"', 'ticker_name = "SPX"').replace(
        'columns = { close = "Close" }', 'columns = { close = "Close" }'
    )
    files.query(
        _mapping(tmp_path / "m.toml", body, "2023-01-03T10:00:00Z"),
        tmp_path / "in.csv",
        tmp_path / "dl",
    )
    (name, _), *_ = list_logs(tmp_path / "dl")
    assert name.label == "SPX"
    assert pd.Timestamp(name.timestamp, unit="us") >= pd.Timestamp("2023-01-03 10:00")
    with pytest.raises(BadInputError, match=r"exported_at = '03/01/2023' is not an ISO 8601"):
        files.query(
            _mapping(tmp_path / "m.toml", body, "03/01/2023"), tmp_path / "in.csv", tmp_path / "x"
        )


def test_an_empty_ticker_is_an_error_not_a_dropped_row(tmp_path):
    (tmp_path / "in.csv").write_text("Symbol,Date,Close\nAAA,2022-01-03,10\n ,2022-01-04,11\n")
    with pytest.raises(BadInputError, match=r"row 3, column 'Symbol': the ticker is empty"):
        files.query(_mapping(tmp_path / "m.toml", MARKET), tmp_path / "in.csv", tmp_path / "dl")


def test_two_dividends_on_one_ex_date_are_both_paid(tmp_path):
    (tmp_path / "ca.csv").write_text(
        "Symbol,ExDate,Type,Amount\nAAA,2020-03-02,dividend,0.25\nAAA,2020-03-02,dividend,1.5\n"
    )
    body = (
        'data_type = "corporate_actions"\nticker = "Symbol"\ndate = "ExDate"\n'
        'columns = { action = "Type", value = "Amount" }\n'
    )
    files.query(_mapping(tmp_path / "m.toml", body), tmp_path / "ca.csv", tmp_path / "dl")
    (name, path), *_ = list_logs(tmp_path / "dl")
    assert len(read_log(path, name)) == 2  # the log keeps both rows as exported
    datasets.build(tmp_path / "dl", tmp_path / "ds")
    _, tables = datasets.load_tables(tmp_path / "ds")
    assert tables["corporate_actions"]["value"].tolist() == [1.75]


def test_a_report_announced_before_its_period_end_is_refused(tmp_path):
    (tmp_path / "f.csv").write_text("Symbol,End,Filed,Revenue\nAAA,2020-03-31,2020-02-15,10\n")
    body = (
        'data_type = "ticker_fundamental_data"\nticker = "Symbol"\ndate = "End"\n'
        'announcement_date = "Filed"\ncolumns = { revenue = "Revenue" }\n'
    )
    with pytest.raises(BadInputError, match=r"row 2, field 'announcement_date'.*before the period"):
        files.query(_mapping(tmp_path / "m.toml", body), tmp_path / "f.csv", tmp_path / "dl")


def test_absurd_prices_are_flagged_and_never_traded_or_marked_at(tmp_path, caplog):
    days = pd.bdate_range("2022-01-03", periods=6)
    closes = [10.0, 10.5, 1e308, 11.0, -3.0, 11.5]
    (tmp_path / "in.csv").write_text(
        "Symbol,Date,Close,Cap\n"
        + "\n".join(f"AAA,{d:%Y-%m-%d},{c!r},1e9" for d, c in zip(days, closes, strict=True))
        + "\n"
    )
    (tmp_path / "c.csv").write_text("Index,Date,Member\nIX,2022-01-03,AAA\n")
    files.query(
        _mapping(tmp_path / "m.toml", MARKET.replace("}", ', market_cap = "Cap" }')),
        tmp_path / "in.csv",
        tmp_path / "dl",
    )
    files.query(
        _mapping(
            tmp_path / "c.toml",
            'data_type = "constituent_list"\nticker = "Member"\ndate = "Date"\nindex = "Index"\n',
        ),
        tmp_path / "c.csv",
        tmp_path / "dl",
    )
    result = datasets.build(tmp_path / "dl", tmp_path / "ds")
    report = result.quality["sources"][0]
    assert report["implausible_prices"]["count"] == 1
    assert report["non_positive_prices"]["count"] == 1
    assert "1 implausible prices" in quality.summary_lines(result.quality)[1]
    params = Parameters(source="files", index="IX", datasets_dir=str(tmp_path / "ds"))
    panel = load_panel(params)
    assert np.isnan(panel.fields["close"][[2, 4], 0]).all()
    assert panel.mark[:, 0].tolist() == [10.0, 10.5, 10.5, 11.0, 11.0, 11.5]
    assert "AAA on 2022-01-05" in caplog.text and "AAA on 2022-01-07" in caplog.text


@pytest.mark.parametrize(
    "encoding, ok",
    [("utf-8-sig", True), ("utf-16", True), ("latin-1", False)],
)
def test_encodings_are_read_or_refused_clearly(tmp_path, encoding, ok):
    text = "Symbol,Date,Close\nNESTLÉ,2022-01-03,10.5\n"
    (tmp_path / "in.csv").write_bytes(text.encode(encoding))
    mapping = _mapping(tmp_path / "m.toml", MARKET)
    if ok:
        files.query(mapping, tmp_path / "in.csv", tmp_path / "dl")
        (name, _), *_ = list_logs(tmp_path / "dl")
        assert name.label == "NESTLÉ"
    else:
        with pytest.raises(BadInputError, match=r"not valid utf-8 text.*encoding = \"cp1252\""):
            files.query(mapping, tmp_path / "in.csv", tmp_path / "dl")
        (tmp_path / "m.toml").write_text(
            mapping.read_text().replace("[[output]]", '[read]\nencoding = "latin-1"\n\n[[output]]')
        )
        files.query(mapping, tmp_path / "in.csv", tmp_path / "dl")
        assert list_logs(tmp_path / "dl")[0][0].label == "NESTLÉ"


def test_binary_garbage_in_the_datalog_is_a_bad_log_not_a_traceback(tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    good = LogName(1577836800000000, "x", "ticker_market_data", "GOOD")
    (dl / good.filename).write_text(
        "date,open,high,low,close,volume,market_cap\n2019-12-02,,,,1.5,,\n"
    )
    junk = LogName(1577836800000001, "x", "ticker_market_data", "JUNK")
    (dl / junk.filename).write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BadInputError, match=r"JUNK.csv: not valid utf-8"):
        datasets.build(dl, tmp_path / "ds")
    result = datasets.build(dl, tmp_path / "ds", skip_bad_logs=True)
    assert result.skipped_logs == [junk.filename]


def test_a_very_long_ticker_fits_a_file_name(tmp_path):
    ticker = "株" * 120
    (tmp_path / "in.csv").write_text(f"Symbol,Date,Close\n{ticker},2022-01-03,10.5\n")
    files.query(_mapping(tmp_path / "m.toml", MARKET), tmp_path / "in.csv", tmp_path / "dl")
    (name, path), *_ = list_logs(tmp_path / "dl")
    assert len(path.name.encode()) <= 255
    assert name.label.startswith("株") and "~" in name.label
    datasets.build(tmp_path / "dl", tmp_path / "ds")


# ---- monthly bars, a supplied benchmark, and a missing one ---------------------------------


MONTHS = pd.date_range("2001-01-31", periods=60, freq="ME")


def _monthly_exports(folder: Path, with_caps: bool = True) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(3)
    rows = []
    closes = {}
    for ticker, drift in (("AAA", 0.01), ("BBB", 0.004), ("IDX", 0.006)):
        r = drift + 0.04 * rng.standard_normal(len(MONTHS))
        r[1] = 0.001  # a calm first month, so the first buys fit the cash exactly
        closes[ticker] = 100.0 * np.cumprod(1 + r) * (1 + 1e-13 * rng.random(len(MONTHS)))
        for d, c in zip(MONTHS, closes[ticker], strict=True):
            cap = repr(float(c) * 1e6) if with_caps else ""
            rows.append(f"{ticker},{d:%Y-%m-%d},{float(c)!r},{cap}")
    (folder / "monthly.csv").write_text("Symbol,Date,Close,Cap\n" + "\n".join(rows) + "\n")
    members = "\n".join(f"US2,{d:%Y-%m-%d},{t}" for d in MONTHS for t in ("AAA", "BBB"))
    (folder / "members.csv").write_text("Index,Date,Member\n" + members + "\n")
    (folder / "divs.csv").write_text(
        "Symbol,ExDate,Type,Amount\nAAA,2002-06-30,dividend,0.75\nAAA,2002-06-30,dividend,0.5\n"
    )
    market = MARKET.replace("}", ', market_cap = "Cap" }')
    members_map = (
        'data_type = "constituent_list"\nticker = "Member"\ndate = "Date"\nindex = "Index"\n'
    )
    divs = (
        'data_type = "corporate_actions"\nticker = "Symbol"\ndate = "ExDate"\n'
        'columns = { action = "Type", value = "Amount" }\n'
    )
    out = []
    for name, body, data in (
        ("market", market, "monthly.csv"),
        ("members", members_map, "members.csv"),
        ("divs", divs, "divs.csv"),
    ):
        out.append((_mapping(folder / f"{name}.toml", body, "2006-01-15"), folder / data))
    np.save(folder / "closes.npy", np.array([closes["AAA"], closes["BBB"], closes["IDX"]]))
    return out


ALGORITHM = """import pandas as pd


def compute_weights(view, params):
    return pd.Series(0.45, index=view.universe)
"""


def _project(tmp_path: Path, benchmark: str, with_caps: bool = True) -> Path:
    for name in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "algorithm.py").write_text(ALGORITHM)
    imports = _monthly_exports(tmp_path, with_caps)
    pairs = ", ".join(f'["{a.name}", "{b.name}"]' for a, b in imports)
    (tmp_path / "parameters.py").write_text(
        f'source = "files"\nindex = "US2"\nstart = "2001-01-01"\nend = "2005-12-31"\n'
        f'file_imports = [{pairs}]\nrebalance = "never"\nfill_timing = "close"\n'
        f"fractional_shares = True\ncash_buffer = 0.0\nno_trade_band = 0.0\nspread_bps = 0.0\n"
        f"slippage_bps = 0.0\nimpact_coef = 0.0\ncommission_rate = 0.0\ncommission_min = 0.0\n"
        f'benchmark = "{benchmark}"\nrisk_free_rate = 0.03\n'
    )
    for script in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py"):
        run_script(tmp_path, script, "--quiet")
    run_script(tmp_path, "04_evaluate.py", "--quiet")
    return next(p for p in (tmp_path / "results").iterdir() if p.is_dir())


@pytest.mark.slow
def test_a_monthly_panel_backtests_exactly_and_annualises_by_twelve(tmp_path):
    run = _project(tmp_path, benchmark="IDX")
    closes = np.load(tmp_path / "closes.npy")
    # independently: decide at the first close (0.45 each), buy at the next close, hold;
    # AAA's two dividends on one ex-date (0.75 + 0.5) are both paid in cash
    cash0 = 1_000_000.0
    shares = 0.45 * cash0 / closes[:2, 0]
    cash = cash0 - float(shares @ closes[:2, 1])
    nav = np.empty(len(MONTHS))
    nav[0] = cash0
    div_day = MONTHS.get_loc(pd.Timestamp("2002-06-30"))
    for t in range(1, len(MONTHS)):
        if t == div_day:
            cash += shares[0] * 1.25
        nav[t] = cash + float(shares @ closes[:2, t])
    runtime = pd.read_csv(run / "runtime_log.csv")
    assert np.allclose(runtime["value"].to_numpy(), nav, rtol=1e-12, atol=0)
    info = json.loads((run / "run.json").read_text())
    assert info["bar_frequency"] == "monthly" and info["periods_per_year"] == 12
    metrics = json.loads((run / "metrics.json").read_text())
    r = nav / np.r_[cash0, nav[:-1]] - 1
    rf = 1.03 ** (1 / 12) - 1
    assert metrics["portfolio"]["annual_return"] == pytest.approx(
        (nav[-1] / cash0) ** (12 / len(r)) - 1, rel=1e-12
    )
    assert metrics["portfolio"]["annual_volatility"] == pytest.approx(
        np.std(r, ddof=1) * np.sqrt(12), rel=1e-12
    )
    assert metrics["portfolio"]["sharpe_ratio"] == pytest.approx(
        np.mean(r - rf) / np.std(r - rf, ddof=1) * np.sqrt(12), rel=1e-12
    )
    idx = closes[2]
    assert metrics["benchmark"]["annual_return"] == pytest.approx(
        (idx[-1] / idx[0]) ** (12 / len(r)) - 1, rel=1e-12
    )
    assert metrics["benchmark_name"] == "IDX" and metrics["benchmark_available"]
    assert metrics["contest"]["checked"] is False and metrics["contest"]["score"] is None
    assert infer(pd.DatetimeIndex(MONTHS)) == "monthly"


@pytest.mark.slow
def test_no_market_caps_means_no_index_comparison_not_a_zero_index(tmp_path):
    run = _project(tmp_path, benchmark="index", with_caps=False)
    info = json.loads((run / "run.json").read_text())
    assert any("cannot be computed" in w for w in info["warnings"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["benchmark_available"] is False
    assert metrics["relative"]["information_ratio"] is None
    assert metrics["findings"][0].startswith("There is no comparison with the US2 index")


def test_information_ratio_is_undefined_when_tracking_error_is_rounding_noise():
    r = np.full(300, 0.001) + 1e-18 * np.arange(300)
    assert np.isnan(m.information_ratio(r, r + 1.5e-17))
    assert m.annual_return(np.full(12, 0.01), periods=12) == pytest.approx(1.01**12 - 1)


def test_a_european_export_with_decimal_commas_reads_exactly(tmp_path):
    (tmp_path / "in.csv").write_text(
        "Symbol;Date;Close\nAAA;02.01.2019;1.234,5\nAAA;03.01.2019;1.240,25\nAAA;04.01.2019;7,125\n"
    )
    body = MARKET.replace('date_format = "%Y-%m-%d"', 'date_format = "%d.%m.%Y"')
    path = _mapping(tmp_path / "m.toml", body)
    path.write_text(
        path.read_text().replace(
            "[[output]]", '[read]\nsep = ";"\ndecimal = ","\nthousands = "."\n\n[[output]]'
        )
    )
    files.query(path, tmp_path / "in.csv", tmp_path / "dl")
    (name, log), *_ = list_logs(tmp_path / "dl")
    frame = read_log(log, name)
    assert frame["close"].tolist() == [1234.5, 1240.25, 7.125]
    assert frame["date"].tolist() == [pd.Timestamp(f"2019-01-0{d}") for d in (2, 3, 4)]
