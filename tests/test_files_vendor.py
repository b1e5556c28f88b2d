"""D4: the file vendor imports exports through declarative mappings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_backtest.config import Parameters
from equity_backtest.data import datasets
from equity_backtest.data.datalog import list_logs
from equity_backtest.data.panel import load_panel
from equity_backtest.data.vendors import files
from equity_backtest.engine.view import View
from equity_backtest.errors import BadInputError
from tests.conftest import REPO, run_script, tree_digest

SAMPLES = [
    ("datastream_close", "datastream_close.csv"),
    ("datastream_volume", "datastream_volume.csv"),
    ("datastream_mv", "datastream_mv.csv"),
    ("fundamentals_wide", "fundamentals_wide.csv"),
    ("constituents", "constituents.csv"),
]


def _import_all(datalog: Path) -> None:
    for mapping, sample in SAMPLES:
        files.query(REPO / "mappings" / f"{mapping}.toml", REPO / "samples" / sample, datalog)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    _import_all(root / "datalog")
    datasets.build(root / "datalog", root / "datasets")
    return root


def test_samples_import_into_the_datalog_and_reruns_write_nothing(imported):
    logs = list_logs(imported / "datalog")
    kinds = {n.data_type for n, _ in logs}
    assert kinds == {"ticker_market_data", "ticker_fundamental_data", "constituent_list"}
    assert all(n.source == "files" for n, _ in logs)
    before = tree_digest(imported / "datalog")
    _import_all(imported / "datalog")
    assert tree_digest(imported / "datalog") == before


def test_values_units_and_dates_land_as_mapped(imported):
    _, t = datasets.load_tables(imported / "datasets")
    close = pd.read_csv(REPO / "samples" / "datastream_close.csv")
    mv = pd.read_csv(REPO / "samples" / "datastream_mv.csv")
    ticker = close.columns[3]
    row = 100
    day = pd.to_datetime(close["Date"].iloc[row], format="%d/%m/%Y")
    mk = t["market"].set_index(["ticker", "date"]).loc[(ticker, day)]
    assert mk["close"] == pytest.approx(close[ticker].iloc[row])
    assert mk["market_cap"] == pytest.approx(mv[ticker].iloc[row] * 1e6)  # units applied
    assert np.isnan(mk["open"])  # not in the export: unknown, not invented
    fund = pd.read_csv(REPO / "samples" / "fundamentals_wide.csv").iloc[7]
    f = t["fundamentals"]
    got = f[
        (f["ticker"].astype(str) == fund["symbol"])
        & (f["metric"].astype(str) == "pe_ratio")
        & (f["period_end"] == pd.Timestamp(fund["date"]))
    ]
    assert got["value"].iloc[0] == pytest.approx(fund["pe"])
    assert got["announcement_date"].iloc[0] == pd.Timestamp(fund["fillingDate"])


def test_a_filing_is_invisible_the_day_before_and_visible_on_its_date(imported):
    params = Parameters(
        source="files",
        index="SAMPLE10",
        datasets_dir=str(imported / "datasets"),
        start=pd.Timestamp("2019-02-01").date(),
        end=pd.Timestamp("2022-12-30").date(),
    )
    panel = load_panel(params)
    fund = pd.read_csv(REPO / "samples" / "fundamentals_wide.csv")
    fund = fund[pd.to_datetime(fund["fillingDate"]).isin(panel.dates)].iloc[10]
    filed = pd.Timestamp(fund["fillingDate"])
    before = panel.dates[panel.dates < filed][-1]

    def seen(day):
        view = View(panel, panel.day(day), np.zeros(len(panel.tickers)), 0.0, 20)
        return view.fundamentals(["revenue"], tickers=[fund["symbol"]])["revenue"].iloc[0]

    assert seen(filed) == pytest.approx(fund["revenue"]) and seen(before) != pytest.approx(
        fund["revenue"]
    )


def test_parquet_and_excel_read_like_csv(tmp_path):
    sample = pd.read_csv(REPO / "samples" / "constituents.csv")
    sample.to_parquet(tmp_path / "c.parquet")
    sample.to_excel(tmp_path / "c.xlsx", index=False)
    mapping = (REPO / "mappings" / "constituents.toml").read_text()
    for name in ("c.parquet", "c.xlsx", "c.csv"):
        if name.endswith("csv"):
            shutil.copy(REPO / "samples" / "constituents.csv", tmp_path / name)
        (tmp_path / "m.toml").write_text(mapping)
        files.query(tmp_path / "m.toml", tmp_path / name, tmp_path / name.replace(".", "_"))
    contents = [
        sorted(p.read_bytes() for _, p in list_logs(tmp_path / d))
        for d in ("c_parquet", "c_xlsx", "c_csv")
    ]
    assert contents[0] == contents[1] == contents[2]


def test_an_excel_file_with_its_data_on_another_sheet_names_the_sheets(tmp_path):
    """A workbook whose first sheet is an 'About' page: the message names the sheet it read, the
    workbook's sheets and the setting that picks one; with it set, the import reads like CSV."""
    sample = pd.read_csv(REPO / "samples" / "constituents.csv")
    with pd.ExcelWriter(tmp_path / "c.xlsx") as book:
        pd.DataFrame({"About": ["exported from the terminal"]}).to_excel(
            book, sheet_name="About", index=False
        )
        sample.to_excel(book, sheet_name="Members", index=False)
    mapping = (REPO / "mappings" / "constituents.toml").read_text()
    (tmp_path / "m.toml").write_text(mapping)
    with pytest.raises(BadInputError) as info:
        files.query(tmp_path / "m.toml", tmp_path / "c.xlsx", tmp_path / "log")
    message = str(info.value)
    assert "sheet 'About'" in message and "'About', 'Members'" in message
    assert 'sheet_name = "..." under [read]' in message
    (tmp_path / "m.toml").write_text(mapping + '\n[read]\nsheet_name = "Members"\n')
    files.query(tmp_path / "m.toml", tmp_path / "c.xlsx", tmp_path / "log")
    assert list_logs(tmp_path / "log")


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda m: m.replace('data_type = "constituent_list"', 'data_type = "prices"'),
            "data_type must be one of",
        ),
        (lambda m: m.replace('ticker = "Constituent"', 'ticker = "Member"'), "no column 'Member'"),
        (
            lambda m: m.replace('date_format = "%Y-%m-%d"', 'date_format = "%d/%m/%Y"'),
            "row 2, column 'ListDate'",
        ),
        (
            lambda m: m.replace('source = "files"', 'source = "My Files"'),
            "'source' must be a lowercase",
        ),
        (lambda m: m + "\n[[[broken", "not valid TOML"),
    ],
)
def test_bad_mappings_are_named(tmp_path, edit, message):
    (tmp_path / "m.toml").write_text(edit((REPO / "mappings" / "constituents.toml").read_text()))
    with pytest.raises(BadInputError, match=message):
        files.query(
            tmp_path / "m.toml", REPO / "samples" / "constituents.csv", tmp_path / "datalog"
        )


def test_a_non_numeric_cell_is_named(tmp_path):
    text = (REPO / "samples" / "datastream_close.csv").read_text().splitlines()
    cells = text[5].split(",")
    cells[2] = "n.a."
    text[5] = ",".join(cells)
    (tmp_path / "close.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(BadInputError, match=r"column 'close'.*'n.a.' is not a number"):
        files.query(
            REPO / "mappings" / "datastream_close.toml",
            tmp_path / "close.csv",
            tmp_path / "datalog",
        )


@pytest.mark.slow
def test_the_sample_exports_backtest_end_to_end(tmp_path):
    for name in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py", "04_evaluate.py"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copy(REPO / "strategies" / "equal_weight.py", tmp_path / "algorithm.py")
    imports = ", ".join(f'["{REPO}/mappings/{m}.toml", "{REPO}/samples/{s}"]' for m, s in SAMPLES)
    (tmp_path / "parameters.py").write_text(
        f'source = "files"\nindex = "SAMPLE10"\nstart = "2020-01-01"\nend = "2022-12-30"\n'
        f'fill_timing = "close"\nfile_imports = [{imports}]\n'
    )
    for script in ("01_query_vendor.py", "02_build_datasets.py", "03_trade.py"):
        run_script(tmp_path, script, "--quiet")
    sheet = Path(tmp_path / run_script(tmp_path, "04_evaluate.py", "--quiet").stdout.strip())
    assert sheet.is_file() and (sheet.parent / "metrics.json").is_file()


def test_corporate_actions_import_with_text_action_column(tmp_path):
    """Dividends, splits and delistings import from an export; action words are matched without
    regard to case, and an unknown action is refused by the import itself (nothing written)."""
    (tmp_path / "ca.csv").write_text(
        "Symbol,ExDate,Type,Amount\n"
        "AAA,2020-03-02,Dividend,0.25\n"
        "AAA,2020-06-01,SPLIT,2\n"
        "BBB,2020-04-15,Delisting,3.10\n"
    )
    (tmp_path / "ca.toml").write_text(
        'source = "files"\nexported_at = "2023-01-03"\n\n[[output]]\n'
        'data_type = "corporate_actions"\nshape = "long"\ndate = "ExDate"\nticker = "Symbol"\n'
        'date_format = "%Y-%m-%d"\ncolumns = { action = "Type", value = "Amount" }\n'
    )
    files.query(tmp_path / "ca.toml", tmp_path / "ca.csv", tmp_path / "datalog")
    datasets.build(tmp_path / "datalog", tmp_path / "datasets")
    _, tables = datasets.load_tables(tmp_path / "datasets")
    ca = tables["corporate_actions"]
    assert list(
        zip(ca["ticker"].astype(str), ca["action"].astype(str), ca["value"], strict=True)
    ) == [
        ("AAA", "dividend", 0.25),
        ("AAA", "split", 2.0),
        ("BBB", "delisting", 3.1),
    ]
    (tmp_path / "ca.csv").write_text("Symbol,ExDate,Type,Amount\nCCC,2020-05-01,Spinoff,1\n")
    with pytest.raises(BadInputError, match="ca.csv .*row 2, field 'action': 'spinoff'"):
        files.query(tmp_path / "ca.toml", tmp_path / "ca.csv", tmp_path / "datalog2")
    assert not list((tmp_path / "datalog2").glob("*"))


def test_a_date_column_without_a_name_is_pointed_out(tmp_path):
    """backtesting.py's CSVs (an index written by pandas) leave the date column's header empty:
    the message says what to call it."""
    (tmp_path / "bars.csv").write_text(",Open,High,Low,Close,Volume\n2020-01-02,1,1,1,1,10\n")
    with pytest.raises(
        BadInputError, match='first column has no name in the file: write "Unnamed: 0"'
    ):
        files.query(
            REPO / "mappings" / "ohlcv_one_ticker.toml", tmp_path / "bars.csv", tmp_path / "log"
        )


@pytest.mark.parametrize("day", ["01/01/0001", "31/12/9999"])
def test_a_date_a_dataset_cannot_hold_is_named(tmp_path, day):
    """pandas 3 reads year 1 (at a coarser unit than the nanoseconds the datasets hold): a date
    outside 1677-09-22..2262-04-11 is named with its row and column, not a traceback, and nothing
    is logged."""
    lines = (REPO / "samples" / "datastream_close.csv").read_text().splitlines()
    row = lines[2].split(",")
    row[0] = day  # (the Date column, day/month/year in this export)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1], ",".join(row), *lines[3:]]) + "\n")
    with pytest.raises(BadInputError, match=r"row 3, column 'Date': .* is not a date from 1677"):
        files.query(REPO / "mappings" / "datastream_close.toml", bad, tmp_path / "datalog")
    assert (
        not list((tmp_path / "datalog").glob("*.csv")) if (tmp_path / "datalog").exists() else True
    )
