"""D8: a corpus of broken logfiles (tests/corpus/), each with its documented treatment.

Every bad file stops 02 with a message naming the file (and the row and field where there is one);
with --skip-bad-logs it is left out, listed in the manifest, and the good logs still build. Unsorted
rows and odd-but-valid labels are accepted. The datalog is never modified.
"""

import shutil
from pathlib import Path

import pytest

from equity_backtest.data import datasets
from equity_backtest.data.vendors import files
from equity_backtest.errors import BadInputError
from tests.conftest import tree_digest

CORPUS = Path(__file__).parent / "corpus"
PREFIX = "1577836800000000__corpus__ticker_market_data__"

BAD = {
    f"{PREFIX}TRUNCATED.csv": r"row 5: expected 7 fields, found 3",
    f"{PREFIX}SEMICOLON.csv": r"header lacks column",
    f"{PREFIX}BADHEADER.csv": r"header lacks column\(s\) \['date'",
    f"{PREFIX}TEXTNUMBER.csv": r"row 4, field 'close': 'n/a' is not a number",
    f"{PREFIX}DUPLICATE.csv": r"row 5, field 'date': 2019-12-04 appears more than once \(first at row 4\)",
    f"{PREFIX}EMPTY.csv": r"the file is empty",
    f"{PREFIX}HEADERONLY.csv": r"a header but no rows",
    f"{PREFIX}FUTURE.csv": r"row 5, field 'date': 2021-06-01 is after the query time 2020-01-01",
    "1577836800000000__corpus__prices__UNKNOWNTYPE.csv": r"unknown data type 'prices'",
    f"{PREFIX}A__B.csv": r"label 'A__B' is not encoded",
    "notes.txt": r"name is not <16-digit timestamp>",
    f"{PREFIX}BINARY.csv": r"not valid utf-8 text \(byte 0x80 at offset 128\)",
}


def _datalog(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "datalog"
    folder.mkdir()
    for name in (f"{PREFIX}GOOD.csv", *names):
        shutil.copy(CORPUS / name, folder / name)
    return folder


@pytest.mark.parametrize("name", list(BAD))
def test_each_bad_file_stops_the_build_with_a_named_message(tmp_path, name):
    datalog = _datalog(tmp_path, name)
    before = tree_digest(datalog)
    with pytest.raises(BadInputError, match=BAD[name]) as err:
        datasets.build(datalog, tmp_path / "datasets")
    assert name in str(err.value) or name.split("__")[-1] in str(err.value)
    assert datasets.current_version(tmp_path / "datasets") is None  # nothing half-built is in use
    result = datasets.build(datalog, tmp_path / "datasets", skip_bad_logs=True)
    assert result.skipped_logs == [name] and result.new_logs == 1
    assert name in datasets.read_manifest(tmp_path / "datasets", result.version)["skipped_logs"]
    assert tree_digest(datalog) == before


def test_unsorted_rows_are_accepted_and_sorted(tmp_path):
    datalog = _datalog(tmp_path, f"{PREFIX}UNSORTED.csv")
    datasets.build(datalog, tmp_path / "datasets")
    _, t = datasets.load_tables(tmp_path / "datasets")
    rows = t["market"][t["market"]["ticker"] == "UNSORTED"]
    assert rows["date"].is_monotonic_increasing and len(rows) == 4


def test_a_hostile_looking_label_is_only_data(tmp_path):
    datalog = _datalog(tmp_path, f"{PREFIX}%2E%2E%2Fx.csv")
    datasets.build(datalog, tmp_path / "datasets")
    _, t = datasets.load_tables(tmp_path / "datasets")
    assert "../x" in set(t["market"]["ticker"].astype(str))
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [
        "CURRENT",
        "v000001",
    ]  # nothing escaped


def test_the_whole_corpus_with_skip_builds_only_the_good_files(tmp_path):
    datalog = tmp_path / "datalog"
    shutil.copytree(CORPUS, datalog)
    before = tree_digest(datalog)
    result = datasets.build(datalog, tmp_path / "datasets", skip_bad_logs=True)
    assert sorted(result.skipped_logs) == sorted(BAD)
    assert result.new_logs == 3  # GOOD, UNSORTED and ../x
    assert tree_digest(datalog) == before


# Exports with common quirks (tests/corpus/imports/): each is imported by 01's file vendor and
# either lands exactly or is refused before anything is written, naming the file, row and field.
IMPORTS = CORPUS / "imports"
IMPORT_CASES = {
    "bom_utf8.csv": ("market.toml", None),
    "utf16.csv": ("market.toml", None),
    "latin1.csv": ("market.toml", r"latin1.csv: not valid utf-8 text .*encoding = \"cp1252\""),
    "ambiguous_dates.csv": ("market.toml", r"row 2, column 'Date': '02/01/2019' reads as both"),
    "empty_ticker.csv": ("market.toml", r"row 3, column 'Symbol': the ticker is empty"),
    "absurd_prices.csv": ("market.toml", None),
    "special_dividend.csv": ("dividends.toml", None),
    "plain.csv": ("unknown_key.toml", r"unknown key 'date_fromat' \(did you mean 'date_format'"),
}


@pytest.mark.parametrize("name", list(IMPORT_CASES))
def test_each_quirky_export_lands_exactly_or_is_refused_before_writing(tmp_path, name):
    mapping, error = IMPORT_CASES[name]
    before = tree_digest(IMPORTS)
    datalog = tmp_path / "datalog"
    if error:
        with pytest.raises(BadInputError, match=error):
            files.query(IMPORTS / mapping, IMPORTS / name, datalog)
        assert not datalog.exists() or not list(datalog.iterdir())
    else:
        files.query(IMPORTS / mapping, IMPORTS / name, datalog)
        result = datasets.build(datalog, tmp_path / "datasets")
        _, t = datasets.load_tables(tmp_path / "datasets")
        if name == "special_dividend.csv":
            assert t["corporate_actions"]["value"].tolist() == [2.25]  # both paid
        elif name == "absurd_prices.csv":
            source = result.quality["sources"][0]
            assert source["implausible_prices"]["count"] == 1
            assert source["non_positive_prices"]["count"] == 1
        else:
            assert set(t["market"]["ticker"].astype(str)) == {"NESTLÉ"}
            assert t["market"]["close"].tolist() == [101.25, 102.5]
    assert tree_digest(IMPORTS) == before  # raw inputs are never modified
