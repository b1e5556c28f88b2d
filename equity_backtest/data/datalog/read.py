"""Reading logfiles: a fast Arrow path for well-formed logs and a careful path that names the
file, line and field of anything wrong; many logs of one type parsed together."""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from ...errors import BadInputError
from .. import textio
from ..vocabulary import LOG_TYPES, LogType
from .checks import _parse_dates, _parse_numbers, check_frame
from .names import LogName, parse_name


def read_log(path: str | Path, name: LogName | None = None) -> pd.DataFrame:
    """Read and validate one logfile into typed columns.

    Raises BadInputError naming the file, row and field. Rows are counted as lines of the file,
    the header being row 1 and blank lines counted, so "row 6" is what an editor shows as line 6.
    """
    path = Path(path)
    name = name or parse_name(path.name)
    where = f"datalog file {path.name}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{where}: cannot read it ({exc.strerror})") from None
    return parse_log(data, name, where)


def parse_log(data: bytes, name: LogName, where: str) -> pd.DataFrame:
    """The typed, checked frame of a log's bytes (read_log without the file).

    A well-formed log is read by pyarrow's CSV reader (fast_float parses numbers correctly
    rounded, as numpy does); anything it does not read cleanly, or that fails a check, is read
    again by the careful path below, whose messages name the row as an editor shows it."""
    kind = LOG_TYPES[name.data_type]
    text = textio.decode(data, where)
    if not text.strip():
        raise BadInputError(f"{where}: the file is empty; re-run the vendor query for it")
    fast = _fast_parse(text, name, kind, where)
    if fast is not None:
        return fast
    return _careful_parse(text, name, kind, where)


def _fast_parse(text: str, name: LogName, kind: LogType, where: str) -> pd.DataFrame | None:
    """The frame _careful_parse gives for a clean log, or None when the log needs that path."""
    header, _, body = text.partition("\n")
    columns = _clean_header(header.rstrip("\r"), kind)
    if columns is None or not body.strip():
        return None
    out = _fast_table(body.encode(), columns, kind)
    if out is None:
        return None
    try:
        check_frame(name, out, where)
    except BadInputError:
        return None
    return out


def _clean_header(header: str, kind: LogType) -> list[str] | None:
    """The column names of a header the fast readers take (unquoted, distinct, with every
    required column), or None."""
    if '"' in header or "\r" in header:  # quoting, or a lone CR: the careful path names it
        return None
    columns = [c.strip() for c in next(csv.reader([header]), [])]
    if (
        len(set(columns)) != len(columns)
        or "" in columns
        or any(c not in columns for c in kind.required)
    ):
        return None
    return columns


def _fast_table(body: bytes, columns: list[str], kind: LogType) -> pd.DataFrame | None:
    """CSV rows without their header -> typed frame (pyarrow's reader), unchecked; None where
    a field does not read cleanly or a row is all empty (the careful path's business)."""
    numeric = set(kind.numeric)
    if kind.extra_numeric:
        numeric |= {c for c in columns if c not in kind.required}
    types = {c: pa.float64() if c in numeric else pa.string() for c in columns}
    # blocks of 4 MB parsed on Arrow's threads (the rows keep their order); blank lines skipped
    # (parse_many compares rows with lines, so a blank line sends its batch to parse_log)
    reading = pa_csv.ReadOptions(column_names=columns, use_threads=True, block_size=1 << 22)
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body),
            read_options=reading,
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows == 0:
        return None
    out = {}
    empty = np.ones(table.num_rows, dtype=bool)
    for c in columns:
        col = table.column(c)
        empty &= col.is_null().to_numpy(zero_copy_only=False)
        if c in kind.dates:
            days = _iso_days(col)
            if days is None:
                return None
            out[c] = days
        elif c in numeric:
            values = col.to_numpy(zero_copy_only=False).astype(np.float64)
            if np.isinf(values).any():
                return None
            out[c] = values
        else:
            out[c] = pd.Series(col.to_pylist(), dtype=object)  # (pandas 3 would infer str)
    if empty.any():  # rows of empty fields: the careful path drops them and counts their lines
        return None
    return pd.DataFrame(out, index=pd.RangeIndex(table.num_rows))  # one block per dtype


def parse_many(logs: list[tuple[LogName, bytes]]) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Many logs of one data type with one header line, read at once (02 reads thousands of
    per-ticker logs): the rows of all of them in order and, per row, the position of its log in
    `logs`. The same checks as parse_log, per log; None unless every log is clean UTF-8 text
    that the fast reader takes and every check passes; then parse_log reads them one by one,
    with its messages."""
    if not logs:
        return None
    kind = LOG_TYPES[logs[0][0].data_type]
    first = logs[0][1]
    cut = first.find(b"\n") + 1
    header = first[:cut]
    if cut <= 0 or any(
        name.data_type != logs[0][0].data_type
        or not data.startswith(header)
        or not data.endswith(b"\n")
        or len(data) == cut
        for name, data in logs
    ):
        return None
    body = b"".join(data[cut:] for _, data in logs)  # (each log's rows end with a newline, so
    # a blank line in any log is a blank line here: the reader skips it, and the count of rows
    # against the count of lines below sends the batch to parse_log, which names it)
    if any(mark in text for text in (header, body) for mark in (b"\r", b'"', b"\x00")):
        return None
    try:
        columns = _clean_header(header[:-1].decode("utf-8"), kind)
        if not body.isascii():  # (ASCII is UTF-8 as it is)
            body.decode("utf-8")  # strict, as textio.decode
    except UnicodeDecodeError:
        return None
    if columns is None or header.startswith(codecs.BOM_UTF8):
        return None
    counts = np.array([data.count(b"\n", cut) for _, data in logs])
    out = _fast_table(body, columns, kind)
    if out is None or len(out) != counts.sum():
        return None
    owner = np.repeat(np.arange(len(logs)), counts)
    try:
        check_frame(logs[0][0], out, "", group=owner, timestamps=[n.timestamp for n, _ in logs])
    except BadInputError:
        return None
    return out, owner


def _iso_days(text: pa.ChunkedArray) -> np.ndarray | None:
    """YYYY-MM-DD text -> datetime64[ns] (NaT where empty), or None unless every date is written
    exactly so and is a real day (strptime would read 2012-02-30 as 1 March: it must read back).
    Each distinct text is checked once (a build reads millions of rows over a few thousand days)."""
    coded = pc.dictionary_encode(text).combine_chunks()
    distinct = coded.dictionary
    if (
        len(distinct)
        and not pc.all(
            pc.match_substring_regex(distinct, r"^\d{4}-\d{2}-\d{2}$"), skip_nulls=False
        ).as_py()
    ):
        return None
    days = pc.strptime(distinct, format="%Y-%m-%d", unit="ns", error_is_null=True)
    back = pc.strftime(days, format="%Y-%m-%d")  # null where not a day, as 2012-13-01
    if len(distinct) and not pc.all(pc.equal(back, distinct), skip_nulls=False).as_py():
        return None
    values = days.to_numpy(zero_copy_only=False)
    codes = coded.indices.to_numpy(zero_copy_only=False)  # float with NaN where a field is empty
    present = ~np.isnan(codes) if codes.dtype.kind == "f" else np.ones(len(codes), dtype=bool)
    out = np.full(len(codes), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[present] = values[codes[present].astype(np.int64)]
    return out


def _careful_parse(text: str, name: LogName, kind: LogType, where: str) -> pd.DataFrame:
    """parse_log's careful path: pandas reads every field as text, each field is checked on
    its own, and a message names the file, the row (blank lines counted) and the field."""
    try:
        raw = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""],
            skip_blank_lines=False,
        )  # fmt: skip
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{where}: the file is empty; re-run the vendor query for it") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = (
            f"row {m.group(2)}: expected {m.group(1)} fields, found {m.group(3)}"
            if m
            else f"not valid CSV ({str(exc).strip()})"
        )
        raise BadInputError(
            f"{where}, {detail}; check the delimiter and quoting, or re-export the file"
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in kind.required if c not in raw.columns]
    if missing:
        raise BadInputError(
            f"{where}: header lacks column(s) {missing}; a {name.data_type} log needs "
            f"{list(kind.required)} (found {list(raw.columns)})"
        )
    try:
        lines = _line_numbers(text)
    except csv.Error as exc:
        raise BadInputError(
            f"{where}, row {exc.args[1] if len(exc.args) > 1 else '?'}: not valid CSV "
            f"({exc.args[0]}); re-export or query it again"
        ) from None
    for line_no, fields in lines.items():  # pandas pads short rows: count fields ourselves
        if fields != len(raw.columns):
            raise BadInputError(
                f"{where}, row {line_no}: expected {len(raw.columns)} fields, found {fields} "
                "(a truncated or damaged row); re-export or query it again"
            )
    blank = raw.isna().all(axis=1).to_numpy()
    rows = np.arange(2, len(raw) + 2)[~blank]  # line numbers as an editor shows them
    raw = raw[~blank].reset_index(drop=True)
    if raw.empty:
        raise BadInputError(f"{where}: a header but no rows; re-run the vendor query for it")
    numeric = list(kind.numeric)
    if kind.extra_numeric:
        numeric += [c for c in raw.columns if c not in kind.required]
    out = pd.DataFrame(index=raw.index)
    for col in raw.columns:
        if col in kind.dates:
            out[col] = _parse_dates(raw[col], where, col, rows)
        elif col in numeric:
            out[col] = _parse_numbers(raw[col], where, col, rows)
        else:
            out[col] = raw[col].astype(object).where(raw[col].notna(), None)
    check_frame(name, out, where, rows)
    return out


def _line_numbers(text: str) -> dict[int, int]:
    """Field count of every non-blank data line (1-based line numbers; the header is line 1)."""
    out = {}
    reader = csv.reader(io.StringIO(text, newline=""))  # a lone CR ends a line, as for pandas
    try:
        for line_no, fields in enumerate(reader, start=1):
            if line_no > 1 and fields:
                out[line_no] = len(fields)
    except csv.Error as exc:  # the line it stopped on, for the message
        raise csv.Error(str(exc), reader.line_num) from None
    return out
