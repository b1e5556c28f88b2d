"""02 on any datalog content (D8, D12): random, malformed and hostile logfiles either build or
are refused with a message that names the file and the row, and no log is ever modified. The
internal-error path ("please report it") is never reached by what a user or a vendor can write."""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from equity_backtest.data import datasets
from equity_backtest.data.datalog import encode_label
from equity_backtest.data.vocabulary import LOG_TYPES
from equity_backtest.errors import BadInputError

QUERIED = 1_700_000_000_000_000  # 2023-11-14, microseconds: the logs' query time

HOSTILE = st.one_of(
    st.sampled_from(
        ["", " ", "2012-13-01", "2020-02-30", "NaN", "nan", "inf", "-inf", "1e308", "-0", "1,5",
         "12abc", "=1+1", '"quoted, cell"', "NaT", "None", "2099-01-01", "1900-01-01",
         "\u00e9t\u00e9", "\t", "  7  ", "0001-01-01", "20200102", "2020/01/02"]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.text(alphabet=string.printable + "\u00e9\u4e2d", max_size=12),
)  # fmt: skip
DATES = st.sampled_from(["2020-01-02", "2020-01-03", "2020-01-06", "2019-12-31", "2019-09-30"])
NUMBERS = st.one_of(
    st.floats(0.01, 1e6, allow_nan=False).map(lambda v: f"{v:.10g}"),
    st.sampled_from(["0", "1", "2", "0.5", "100"]),
)
TEXT = {
    "ticker": st.sampled_from(["AAA", "BBB", "C.C", "d d"]),
    "index": st.just("TOP10"),
    "action": st.sampled_from(["split", "dividend", "delisting", "merger"]),
    "regime": st.sampled_from(["crash", "calm"]),
    "name": st.sampled_from(["Aaa Corp", "B, Inc.", ""]),
    "sector": st.sampled_from(["Energy", "Tech"]),
}


def cell(column: str):
    """A cell for `column`: mostly what a vendor writes there, sometimes anything at all."""
    kind = next((k for k in LOG_TYPES.values() if column in k.dates), None)
    usual = DATES if kind is not None else TEXT.get(column, NUMBERS)
    return st.one_of(*[usual] * 19, HOSTILE)


@st.composite
def logfile(draw) -> tuple[str, bytes]:
    data_type = draw(st.sampled_from(sorted(LOG_TYPES)))
    kind = LOG_TYPES[data_type]
    columns = list(kind.required)
    if draw(st.integers(0, 3)) == 0:
        columns += draw(st.lists(st.sampled_from(["pe", "x y", "date", "", "close"]), max_size=2))
    if draw(st.integers(0, 5)) == 0 and columns:
        columns.pop(draw(st.integers(0, len(columns) - 1)))
    if draw(st.integers(0, 3)) == 0:
        columns = draw(st.permutations(columns))
    rows = []
    for _ in range(draw(st.integers(0, 6) if draw(st.integers(0, 9)) == 0 else st.integers(1, 6))):
        row = [draw(cell(c)) for c in columns]
        if draw(st.integers(0, 39)) == 0:
            row = row[:-1] if draw(st.booleans()) else [*row, draw(HOSTILE)]
        rows.append(row)
    text = ",".join(columns) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    data = text.encode("utf-8", "surrogatepass")
    mangle = draw(
        st.sampled_from(["none"] * 12 + ["cr", "nul", "bom", "latin1", "truncate", "bytes"])
    )
    if mangle == "cr":
        data = data.replace(b"\n", b"\r\n" if draw(st.booleans()) else b"\r")
    elif mangle == "nul":
        data = data[: len(data) // 2] + b"\x00" + data[len(data) // 2 :]
    elif mangle == "bom":
        data = b"\xef\xbb\xbf" + data
    elif mangle == "latin1":
        data = text.encode("latin-1", "replace")
    elif mangle == "truncate":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif mangle == "bytes":
        data = draw(st.binary(max_size=64))
    label = "20200102_TOP10" if data_type == "constituent_list" else draw(TEXT["ticker"])
    offset = draw(st.integers(0, 5))
    return f"{QUERIED + offset:016d}__files__{data_type}__{encode_label(label)}.csv", data


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(logs=st.lists(logfile(), min_size=1, max_size=4, unique_by=lambda log: log[0]))
def test_02_builds_or_names_the_file_and_row_and_never_touches_a_log(tmp_path_factory, logs):
    root = tmp_path_factory.mktemp("fuzz")
    datalog = root / "datalog"
    datalog.mkdir()
    for name, data in logs:
        (datalog / name).write_bytes(data)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in datalog.iterdir()}
    try:
        datasets.build(datalog, root / "datasets")
    except BadInputError as exc:
        message = str(exc)
        named = [name for name, _ in logs if name in message or str(datalog / name) in message]
        assert named, message
        # a content problem names its row (or line); a file-level one says what is wrong
        assert re.search(
            r"row \d+|line \d+|empty|header|encoding|text|NUL|binary|column", message
        ), message
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in datalog.iterdir()}
    assert after == before


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("date,open,high,low,close,volume,market_cap", ",1,1,1,1,1,1"),  # the reported case
        ("date,index,ticker,weight", "2020-01-02,,AAA,1"),
        ("date,action,value", "2020-01-02,,2"),
        ("period_end,announcement_date,revenue", ",2020-02-01,5"),
    ],
)
def test_an_empty_date_or_key_is_refused_with_file_and_row(tmp_path, header, row):
    data_type = {
        "open": "ticker_market_data", "index": "constituent_list", "action": "corporate_actions",
        "period_end": "ticker_fundamental_data",
    }[next(k for k in ("open", "index", "action", "period_end") if k in header)]  # fmt: skip
    label = "20200102_TOP10" if data_type == "constituent_list" else "AAA"
    name = f"{QUERIED:016d}__files__{data_type}__{label}.csv"
    (tmp_path / "datalog").mkdir()
    (tmp_path / "datalog" / name).write_text(f"{header}\n{row}\n")
    with pytest.raises(BadInputError, match=r"row 2, field '\w+' is empty") as info:
        datasets.build(tmp_path / "datalog", tmp_path / "datasets")
    assert name in str(info.value) and not Path(tmp_path / "datasets" / "CURRENT").exists()
