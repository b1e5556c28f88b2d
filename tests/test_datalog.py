"""D1: logfile names, label encoding, write-once, and validated reading."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from equity_backtest.data.datalog import (
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


def test_list_logs_order_and_what_it_passes_over(tmp_path):
    """Logs come in LogName's order (timestamp, source, data type, label), whatever the order
    the folder lists them in; hidden files, folders and (with `bad`) foreign names are passed over."""
    rng = np.random.default_rng(3)
    names = [
        LogName(ts, src, dt, label)
        for ts in (1_700_000_000_000_001, 1_700_000_000_000_000)
        for src in ("zeta", "alpha")
        for dt in ("ticker_market_data", "constituent_list", "metadata_array")
        for label in ("B", "A/b", "a", "A%")
    ]
    for i in rng.permutation(len(names)):
        (tmp_path / names[i].filename).write_text("x\n")
    (tmp_path / ".hidden.csv.tmp").write_text("x\n")
    (tmp_path / names[0].filename.replace(".csv", "x.csv")).mkdir()  # a folder is no log
    (tmp_path / "notes.txt").write_text("x\n")
    bad: list = []
    listed = list_logs(tmp_path, bad=bad)
    assert [n for n, _ in listed] == sorted(names)
    assert all(p == tmp_path / n.filename for n, p in listed)
    assert [p.name for p, _ in bad] == ["notes.txt"]
    with pytest.raises(BadInputError, match="notes.txt"):
        list_logs(tmp_path)


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


MARKET = "date,open,high,low,close,volume,market_cap\n"
_EDGE_CASES = [
    ("ticker_market_data", MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET + "2012-02-30,1,2,0.5,1.5,100,1e9\n"),  # no such day
    ("ticker_market_data", MARKET + "2012-1-3,1,2,0.5,1.5,100,1e9\n"),  # read, by pandas
    ("ticker_market_data", MARKET + " 2012-01-03 ,1,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET + "2012-01-03,1_000,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET + "2012-01-03,١٢,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET + "2012-01-03,inf,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET + "2012-01-03,nan,2,0.5,1.5,,1e9\n"),
    ("ticker_market_data", MARKET + "2012-01-03, 1.5 ,2,0.5,1.5,100,1e9\n"),
    (
        "ticker_market_data",
        MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n\n2012-01-04,1,2,0.5,1.5,100,1e9\n",
    ),
    ("ticker_market_data", MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n,,,,,,\n"),
    ("ticker_market_data", MARKET + "2012-01-03,1,2,0.5,1.5,100\n"),  # a short row
    ("ticker_market_data", MARKET.replace("\n", "\r\n") + "2012-01-03,1,2,0.5,1.5,100,1e9\r\n"),
    ("ticker_market_data", MARKET.replace("close", " close ") + "2012-01-03,1,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET.replace("close", '"close"') + "2012-01-03,1,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET.replace("volume", "open") + "2012-01-03,1,2,0.5,1.5,100,1e9\n"),
    ("ticker_market_data", MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n2012-01-03,1,2,0.5,1.5,1,1\n"),
    ("ticker_market_data", MARKET[:-1] + ",pe\n2012-01-03,1,2,0.5,1.5,100,1e9,12.5\n"),
    ("ticker_market_data", MARKET + "2031-01-03,1,2,0.5,1.5,100,1e9\n"),  # after the query
    ("metadata_array", 'ticker,name,sector,isin\nAAA,"Foo, Inc.",Tech,\nBBB,"Say ""hi""",,X1\n'),
    ("metadata_array", "ticker,name,sector\n,Foo,Tech\n"),  # an empty ticker
    ("corporate_actions", "date,action,value\n2012-01-03,dividend,0.5\n2012-01-03,dividend,0.25\n"),
    ("corporate_actions", "date,action,value\n2012-01-03,merger,1\n"),
    (
        "ticker_fundamental_data",
        "period_end,announcement_date,revenue,ebit\n2011-12-31,2012-02-01,5,\n",
    ),
    ("ticker_fundamental_data", "period_end,announcement_date,revenue\n2011-12-31,2011-11-01,5\n"),
    ("ticker_fundamental_data", "period_end,announcement_date,revenue\n2011-12-31,,5\n"),
    (
        "constituent_list",
        "date,index,ticker,weight\n2012-01-03,TOP2,AAA,\n2012-01-03,TOP2,BBB,0.5\n",
    ),
    ("ticker_market_data", MARKET + "2012-13-01,1,2,0.5,1.5,100,1e9\n"),  # no such month
    ("ticker_market_data", MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n2012-00-10,1,2,1,1,1,1\n"),
]


def _both(text: str, name: LogName):
    from equity_backtest.data import datalog
    from equity_backtest.data.datalog import read as datalog_read

    kind = datalog.LOG_TYPES[name.data_type]
    fast = datalog_read._fast_parse(text, name, kind, "x")
    try:
        careful = datalog_read._careful_parse(text, name, kind, "x")
    except BadInputError as exc:
        careful = exc
    return fast, careful


def _fast_agrees(text: str, name: LogName) -> bool:
    fast, careful = _both(text, name)
    if fast is None:
        return False  # stepped aside: the careful path decides (and names the row)
    assert not isinstance(careful, BadInputError), careful
    pd.testing.assert_frame_equal(fast, careful, check_exact=True)
    return True


_READ_FAST = {0, 7, 8, 9, 12, 13, 17, 19, 21, 23, 25, 26}  # the clean cases above


@pytest.mark.parametrize("case", range(len(_EDGE_CASES)))
def test_the_fast_reader_agrees_with_the_careful_one_or_steps_aside(case):
    """The fast (pyarrow) path of parse_log returns exactly the careful path's frame, or leaves
    the log to it: never a different value, a date that is no day, or a log the careful path
    refuses; and it does read the clean ones."""
    data_type, text = _EDGE_CASES[case]
    name = LogName(1_900_000_000_000_000, "t", data_type, "AAA")
    assert _fast_agrees(text, name) == (case in _READ_FAST)


def test_the_fast_reader_reads_every_clean_log_of_the_simulated_market(small_store):
    from equity_backtest.data.textio import decode

    logs = list_logs(small_store / "datalog")
    assert all(_fast_agrees(decode(p.read_bytes(), "x"), n) for n, p in logs)


def test_the_fast_reader_parses_numbers_bit_for_bit():
    """Shortest reprs, 17 and 10 significant digits of 2,000 floats over the whole exponent
    range and the smallest subnormal: the same float64 bits from both paths."""
    import numpy as np

    from equity_backtest.data import datalog
    from equity_backtest.data.datalog import read as datalog_read

    rng = np.random.default_rng(5)
    values = np.r_[rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000), 5e-324]
    days = pd.bdate_range("2000-01-03", periods=len(values))
    text = MARKET + "".join(
        f"{day:%Y-%m-%d},{float(v)!r},{v:.17g},{v:.10g},1,1,1\n"
        for day, v in zip(days, values, strict=True)
    )
    name = LogName(1_900_000_000_000_000, "t", "ticker_market_data", "AAA")
    kind = datalog.LOG_TYPES[name.data_type]
    fast = datalog_read._fast_parse(text, name, kind, "x")
    careful = datalog_read._careful_parse(text, name, kind, "x")
    assert fast is not None
    for col in ("open", "high", "low"):
        assert fast[col].to_numpy().tobytes() == careful[col].to_numpy().tobytes()
    assert fast["open"].to_numpy().tobytes() == values.tobytes()


def _by_header(logs):
    groups = {}
    for name, path in logs:
        data = path.read_bytes()
        groups.setdefault((name.data_type, data.split(b"\n", 1)[0]), []).append((name, data))
    return groups


def test_many_logs_read_at_once_equal_the_logs_read_one_by_one(small_store):
    """parse_many: the rows of every log of one type and header, in order, with the log of each
    row, exactly as parse_log reads them one at a time."""
    import numpy as np

    from equity_backtest.data.datalog import parse_log, parse_many

    groups = _by_header(list_logs(small_store / "datalog"))
    assert max(len(g) for g in groups.values()) >= 50
    for logs in groups.values():
        frame, owner = parse_many(logs)
        alone = [parse_log(data, name, "x") for name, data in logs]
        pd.testing.assert_frame_equal(frame, pd.concat(alone, ignore_index=True), check_exact=True)
        assert owner.tolist() == np.repeat(np.arange(len(logs)), [len(f) for f in alone]).tolist()


def test_many_logs_over_several_of_the_reader_s_blocks_equal_the_logs_read_one_by_one(
    small_store,
):
    """Over 4 MB, parse_many's text is parsed in blocks on Arrow's threads: the rows still come
    in order, each with its log, as parse_log reads the logs one at a time (the small market's
    price logs under new names until they pass 10 MB)."""
    import numpy as np

    from equity_backtest.data.datalog import parse_log, parse_many

    groups = _by_header(list_logs(small_store / "datalog"))
    market = next(g for (kind, _), g in groups.items() if kind == "ticker_market_data")
    logs, copy = [], 0
    while sum(len(data) for _, data in logs) < 10 << 20:
        logs += [(dataclasses.replace(n, label=f"{n.label}{copy}"), data) for n, data in market]
        copy += 1
    frame, owner = parse_many(logs)
    alone = [parse_log(data, name, "x") for name, data in logs]
    pd.testing.assert_frame_equal(frame, pd.concat(alone, ignore_index=True), check_exact=True)
    assert owner.tolist() == np.repeat(np.arange(len(logs)), [len(f) for f in alone]).tolist()


@pytest.mark.parametrize(
    "bad",
    [
        MARKET + "2012-01-04,1,2,0.5,1.5,100,1e9\n2012-01-04,1,2,0.5,1.5,100,1e9\n",  # a repeat
        MARKET + "2012-01-04,1,2,0.5,1.5,100,1e9\n2020-01-06,1,2,0.5,1.5,100,1e9\n",  # late
        MARKET + "2012-01-04,1,2,0.5,1.5,100,1e9\n2012-02-30,1,2,0.5,1.5,100,1e9\n",
        MARKET + "2012-01-04,1,2,0.5,1.5,100,1e9\n2012-01-05,1,2,0.5,1.5,100\n",
        MARKET + "2012-01-04,1,2,0.5,1.5,100,1e9\r\n",
        MARKET + "2012-01-04,x,2,0.5,1.5,100,1e9\n",
        MARKET + "\n2012-01-04,1,2,0.5,1.5,100,1e9\n",  # a blank line first
        MARKET + "2012-01-04,1,2,0.5,1.5,100,1e9\n\n",  # and last
        MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n\n2012-01-04,1,2,0.5,1.5,100,1e9\n",  # between
        MARKET + '2012-01-04,1,2,0.5,1.5,100,"1e9"\n',
    ],
)
def test_many_logs_step_aside_when_one_needs_its_own_reading(bad):
    """One log that breaks a rule of its own (a key twice in it, a day after its own query
    time, no such day, a short row, CRLF, a word for a number, a blank line, a quote) sends
    the batch back to parse_log, which names its row; the same rows spread over two clean logs
    are fine. The bad log is checked first and last in the batch."""
    from equity_backtest.data.datalog import parse_many

    good = MARKET + "2012-01-03,1,2,0.5,1.5,100,1e9\n2012-01-04,1,2,0.5,1.5,100,1e9\n"
    early = LogName(1_577_836_800_000_000, "t", "ticker_market_data", "AAA")  # 2020-01-01
    late = LogName(1_900_000_000_000_000, "t", "ticker_market_data", "BBB")
    assert parse_many([(late, good.encode()), (early, good.encode())]) is not None
    assert parse_many([(late, good.encode()), (early, bad.encode())]) is None
    assert parse_many([(early, bad.encode()), (late, good.encode())]) is None


def test_logs_rendered_together_equal_logs_rendered_one_by_one():
    """render_logs (the simulated vendor's writer) gives render_log's bytes for every log, also
    where a field needs quoting (rendered alone), and names the log whose check fails."""
    import datetime as dt

    import numpy as np

    from equity_backtest.data.datalog import render_log, render_logs
    from equity_backtest.data.vendors.simulated import SimulationSettings, simulate

    market = simulate(SimulationSettings(40, 10, dt.date(2015, 1, 1), dt.date(2016, 12, 31), 3))
    stamp = 1_900_000_000_000_000
    for data_type, frame in (
        ("ticker_market_data", market.prices),
        ("ticker_fundamental_data", market.fundamentals),
        ("corporate_actions", market.corporate_actions),
    ):
        frame = frame.sort_values("ticker", kind="stable").reset_index(drop=True)
        tickers = frame.pop("ticker").to_numpy()
        starts = np.r_[np.flatnonzero(np.r_[True, tickers[1:] != tickers[:-1]]), len(frame)]
        names = [LogName(stamp + k, "t", data_type, tickers[a]) for k, a in enumerate(starts[:-1])]
        together = render_logs(names, frame, starts)
        spans = zip(names, starts[:-1], starts[1:], strict=True)
        alone = [render_log(n, frame.iloc[a:b]) for n, a, b in spans]
        assert together == alone and len(together) > 10
    meta = pd.DataFrame({"ticker": ["A", "B"], "name": ["Foo, Inc.", "Bar"], "sector": "X"})
    names = [LogName(stamp, "t", "metadata_array", "u1"), LogName(stamp + 1, "t", "metadata_array", "u2")]  # fmt: skip
    assert render_logs(names, meta, [0, 1, 2]) == [render_log(names[0], meta.iloc[:1]),
                                                    render_log(names[1], meta.iloc[1:])]  # fmt: skip
    rows = pd.DataFrame(
        {"date": pd.to_datetime(["2012-01-03", "2031-01-03"]), "open": 1.0, "high": 1.0,
         "low": 1.0, "close": 1.0, "volume": 1.0, "market_cap": 1.0}
    )  # fmt: skip
    names = [LogName(1_700_000_000_000_000 + k, "t", "ticker_market_data", t) for k, t in enumerate("AB")]  # fmt: skip
    with pytest.raises(BadInputError, match=r"__B\.csv, row 2, field 'date'.*after the query"):
        render_logs(names, rows, [0, 1, 2])


@pytest.mark.parametrize("seed", range(3))
def test_lines_made_by_arrow_equal_the_python_text(seed):
    """A log's lines are made by Arrow's kernels (datalog._line_texts): the very bytes of the
    Python path (format_floats, then csv_text) on numbers of every kind (ten-digit quoted, only
    their shortest repr, below 1e-4, huge, zero, -0.0, NaN, inf), days with a NaT, text with
    missing values and non-ASCII, integers and booleans; Arrow steps aside for a field that
    needs quoting and for a column without a number."""
    import numpy as np

    from equity_backtest.data import datalog
    from equity_backtest.data.datalog import write as datalog_write
    from equity_backtest.infra.storage import csv_text

    rng = np.random.default_rng(seed)
    n = 4000
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-5, 1.5e-7, 123456789012.0, 1e22, 5e-324,
               1.7976931348623157e308, 9.9999999999, 0.0001, 1e16]  # fmt: skip
    frame = pd.DataFrame(
        {
            "date": (pd.to_datetime("1990-01-01") + pd.to_timedelta(rng.integers(0, 12000, n), "D")).astype("datetime64[ns]"),
            "quoted": datalog.quote(rng.lognormal(3, 2, n) * rng.choice([-1, 1], n)),
            "shortest": rng.normal(size=n) * 10.0 ** rng.integers(-12, 30, n),
            "cents": np.round(rng.uniform(0, 1e4, n), 2),
            "gappy": np.where(rng.random(n) < 0.3, np.nan, rng.lognormal(0, 8, n)),
            "special": rng.choice(special, n),
            "name": np.array(["Äpfel AG", "x", None, "Zürich ✓", np.nan], dtype=object)[rng.integers(0, 5, n)],
            "count": rng.integers(-(10**12), 10**12, n),
            "flag": rng.random(n) < 0.5,
        }
    )  # fmt: skip
    frame.loc[3, "date"] = pd.NaT

    def python_path(f):
        return csv_text(datalog_write._numbers_as_text(f)).encode("utf-8")

    assert datalog_write._line_texts(frame) is not None
    assert datalog.frame_to_csv_bytes(frame) == python_path(frame)
    assert datalog.frame_to_csv_bytes(frame.iloc[5:9]) == python_path(frame.iloc[5:9])
    for stepped_aside in (
        frame.assign(name=frame["name"].where(frame.index != 7, "Foo, Inc.")),
        frame.assign(gappy=np.nan),
        frame.rename(columns={"count": 'the "count"'}),
    ):
        assert datalog_write._line_texts(stepped_aside) is None
        assert datalog.frame_to_csv_bytes(stepped_aside) == python_path(stepped_aside)


def test_many_logs_read_non_ascii_text_and_step_aside_for_bytes_that_are_not_utf8():
    """Text beyond ASCII in a log is read as it is; a byte that is not UTF-8 sends the batch
    to parse_log, whose message names the log."""
    from equity_backtest.data.datalog import parse_log, parse_many

    head = "ticker,name,sector,isin,currency,listing_date,exchange\n"
    early = LogName(1_577_836_800_000_000, "t", "metadata_array", "universe")
    late = LogName(1_900_000_000_000_000, "t", "metadata_array", "more")
    good = (head + "AAA,Société Générale,Financials,ZZ1,EUR,2001-01-02,XPAR\n").encode()
    other = (head + "BBB,Ørsted,Utilities,ZZ2,DKK,2001-01-02,XCSE\n").encode()
    frame, _ = parse_many([(early, good), (late, other)])
    assert frame["name"].tolist() == ["Société Générale", "Ørsted"]
    latin = (head + "CCC,Nestl\xe9,Staples,ZZ3,CHF,2001-01-02,XSWX\n").encode("latin-1")
    assert parse_many([(early, good), (late, latin)]) is None
    with pytest.raises(BadInputError, match="more"):
        parse_log(latin, late, f"logfile {late.filename}")


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_a_date_a_dataset_cannot_hold_is_named_with_its_row(tmp_path, day):
    """Found by test_datalog_fuzz: pandas 3 parses 0001-01-01 at a coarser unit, and turning it
    into the datasets' nanoseconds raised a bare OutOfBoundsDatetime from 02. Now the log's row
    and field are named, by the careful reader and by 02 reading many logs at once."""
    name = LogName(1_700_000_000_000_000, "files", "constituent_list", "20200102_TOP10")
    path = tmp_path / name.filename
    path.write_bytes(
        f"date,index,ticker,weight\n2020-01-02,TOP10,AAB,1\n{day},TOP10,AAA,1\n".encode()
    )
    with pytest.raises(
        BadInputError,
        match=rf"row 3, field 'date': '{day}' is not a date from 1677-09-22 to 2262-04-11",
    ):
        read_log(path)
    from equity_backtest.data import datasets

    with pytest.raises(BadInputError, match=rf"{name.filename}, row 3, field 'date'"):
        datasets.build(tmp_path, tmp_path / "datasets")
