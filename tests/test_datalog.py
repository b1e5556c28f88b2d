"""D1: logfile names, label encoding, write-once, and validated reading."""

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from equity_backtest.datalog import (
    LogName,
    decode_label,
    encode_label,
    list_logs,
    parse_name,
    read_log,
    write_log,
)
from equity_backtest.errors import BadInputError


@given(st.text(min_size=1, max_size=40))
def test_label_encoding_round_trips_and_is_a_safe_name_part(label):
    enc = encode_label(label)
    assert decode_label(enc) == label
    assert "/" not in enc and "\\" not in enc and "__" not in enc
    assert not enc.startswith(("_", ".")) and not enc.endswith("_")
    name = LogName(1_700_000_000_000_000, "simulated", "ticker_market_data", label)
    assert parse_name(name.filename) == name


@pytest.mark.parametrize(
    "label",
    ["20121001_TOP40", "AAPL US Equity", "../etc/passwd", "a__b", "_x_", "..", "ISIN:US0378331005"],
)
def test_hostile_and_ordinary_labels(label):
    enc = encode_label(label)
    assert (
        decode_label(enc) == label and "/" not in enc and "__" not in enc and enc not in (".", "..")
    )


def test_readable_labels_stay_readable():
    assert encode_label("20121001_TOP40") == "20121001_TOP40"


def test_names_sort_by_time():
    a = LogName(999_999_999_999_999, "z", "metadata_array", "x").filename
    b = LogName(1_000_000_000_000_000, "a", "metadata_array", "x").filename
    assert sorted([b, a]) == [a, b]


@pytest.mark.parametrize(
    "bad",
    [
        "notes.txt",
        "123__simulated__ticker_market_data__X.csv",
        "1700000000000000__simulated__prices__X.csv",
    ],
)
def test_bad_names_are_named(bad):
    with pytest.raises(BadInputError, match="datalog file"):
        parse_name(bad)


def _frame():
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-02", "2020-01-03"]),
            "open": [1.0, 2.0],
            "high": [1.0, 2.0],
            "low": [1.0, 2.0],
            "close": [1.0, 2.0],
            "volume": [10.0, 20.0],
            "market_cap": [100.0, 200.0],
        }
    )


def test_write_once_never_replaces(tmp_path):
    name = LogName(1_700_000_000_000_000, "simulated", "ticker_market_data", "ABC")
    path, written = write_log(tmp_path, name, _frame())
    assert written and path.name == name.filename
    before = path.read_bytes()
    assert write_log(tmp_path, name, _frame()) == (path, False)  # identical: already logged
    with pytest.raises(BadInputError, match="never replaced"):
        write_log(tmp_path, name, _frame().assign(close=[9.0, 9.0]))
    assert path.read_bytes() == before
    assert [n for n, _ in list_logs(tmp_path)] == [name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_read_log_types_and_errors_name_file_row_field(tmp_path):
    name = LogName(1_700_000_000_000_000, "simulated", "ticker_market_data", "ABC")
    path, _ = write_log(tmp_path, name, _frame())
    df = read_log(path)
    assert df["close"].tolist() == [1.0, 2.0] and str(df["date"].dtype).startswith("datetime64")
    text = path.read_text().replace("2020-01-03,2,", "2020-01-03,two,")
    bad = (
        tmp_path / LogName(1_700_000_000_000_001, "simulated", "ticker_market_data", "ABC").filename
    )
    bad.write_text(text)
    with pytest.raises(BadInputError, match=r"row 3.*field 'open'.*'two'"):
        read_log(bad)
    empty = (
        tmp_path / LogName(1_700_000_000_000_002, "simulated", "ticker_market_data", "ABC").filename
    )
    empty.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        read_log(empty)
    header = (
        tmp_path / LogName(1_700_000_000_000_003, "simulated", "ticker_market_data", "ABC").filename
    )
    header.write_text("day,price\n2020-01-02,1\n")
    with pytest.raises(BadInputError, match="header lacks"):
        read_log(header)
