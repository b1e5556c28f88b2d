"""The datalog (D1): immutable vendor responses, one CSV per query, named so that names sort by time.

    datalog/<timestamp>__<source>__<data_type>__<label>.csv

timestamp: UTC epoch microseconds, 16 digits. source: lowercase vendor name. data_type: one of
DATA_TYPES. label: what was asked, percent-encoded so that '/', '\\', '__' and leading/trailing '_'
can never appear and the original is recoverable with `decode_label`.

Logfiles are written once (temp file + atomic link) and never edited or deleted by the pipeline.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import hashlib
import io
import os
import re
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from ..errors import BadInputError
from ..infra.storage import atomic_write_many, csv_columns, csv_lines, csv_text
from . import textio
from .vocabulary import CORPORATE_ACTIONS, DATA_TYPES, LOG_TYPES, LogType

# names kept for callers of earlier versions; the vocabulary module is their home
DATA_TYPES, CORPORATE_ACTIONS = DATA_TYPES, CORPORATE_ACTIONS
# a file name may be at most this many bytes on common file systems (ext4, APFS, NTFS: 255)
MAX_NAME_BYTES = 255

_NAME_RE = re.compile(r"^(\d{16})__([a-z0-9]+)__([a-z_]+?)__(.+)\.csv$")


@dataclasses.dataclass(frozen=True, order=True)
class LogName:
    """The parsed parts of a logfile name; ordering is by timestamp first."""

    timestamp: int
    source: str
    data_type: str
    label: str

    @property
    def filename(self) -> str:
        return f"{self.timestamp:016d}__{self.source}__{self.data_type}__{encode_label(self.label)}.csv"


def encode_label(label: str) -> str:
    """Percent-encode a label so it is a safe file-name part with no '__' and no path separator."""
    if not isinstance(label, str) or label == "":
        raise BadInputError(f"datalog label {label!r} must be a non-empty string")
    text = urllib.parse.quote(label, safe="")  # leaves only [A-Za-z0-9_.~-] unescaped
    text = re.sub(r"(?<=_)_", "%5F", text)  # no '__' inside
    if text.startswith("_"):
        text = "%5F" + text[1:]
    if text.endswith("_"):
        text = text[:-1] + "%5F"
    if text.startswith("."):  # never a hidden file or '..'
        text = "%2E" + text[1:]
    return text


def decode_label(text: str) -> str:
    """Inverse of encode_label."""
    return urllib.parse.unquote(text)


def parse_name(filename: str) -> LogName:
    """Split a logfile name into its parts; a foreign or malformed name is a clear error."""
    m = _NAME_RE.match(filename)
    if not m:
        raise BadInputError(
            f"datalog file '{filename}': name is not <16-digit timestamp>__<source>__<data_type>__<label>.csv"
        )
    ts, source, data_type, label = m.groups()
    if "__" in label or label.startswith(("_", ".")) or label.endswith("_"):
        raise BadInputError(
            f"datalog file '{filename}': label '{label}' is not encoded as the pipeline writes labels "
            "(no '__', no leading '.' or '_'); rename it with datalog.encode_label"
        )
    if data_type not in LOG_TYPES:
        raise BadInputError(
            f"datalog file '{filename}': unknown data type '{data_type}' (known: {', '.join(DATA_TYPES)})"
        )
    return LogName(int(ts), source, data_type, decode_label(label))


def list_logs(datalog_dir: str | Path, bad: list | None = None) -> list[tuple[LogName, Path]]:
    """All logfiles in time order (hidden temp files are not logs).

    A file whose name does not parse raises BadInputError, unless a `bad` list is given: then
    (path, error) is appended to it and the file is passed over.
    """
    root = Path(datalog_dir)
    if not root.is_dir():
        return []
    out = []
    with os.scandir(root) as entries:  # (the kind of each entry without a stat per file)
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                out.append((parse_name(entry.name), root / entry.name))
            except BadInputError as exc:
                if bad is None:
                    raise
                bad.append((root / entry.name, exc))
    # LogName's order (its fields in turn), one key per log instead of a call per comparison
    out.sort(
        key=lambda it: (it[0].timestamp, it[0].source, it[0].data_type, it[0].label, it[1].name)
    )
    return out


_QUOTE_CHUNK = 1 << 20
_POWERS_OF_TEN = 10.0 ** np.arange(23)  # (each exact)


def quote(values: np.ndarray) -> np.ndarray:
    """float(f"{v:.10g}") of every value (10 significant digits), computed with numpy: the
    10-digit integer mantissa m = rint(v x 10^s) comes from one correctly rounded product, and
    m / 10^s is then the double nearest the decimal, as Python's float() gives. Values whose
    product lies within 2e-6 of a rounding tie (or outside 10^+-22 steps) are done by Python."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1 and len(values) > _QUOTE_CHUNK:  # (value by value: memory stays flat)
        return np.concatenate([quote(values[a : a + _QUOTE_CHUNK])
                               for a in range(0, len(values), _QUOTE_CHUNK)])  # fmt: skip
    with np.errstate(all="ignore"):
        a = np.abs(values)  # (signs back at the end: rint and the products are symmetric)
        done = ~np.isfinite(a) | (a == 0)  # (nothing to round: kept as they are)
        s = 9 - np.floor(np.log10(np.where(done, 1.0, a)))
        fits = np.abs(s) <= 22
        power = _POWERS_OF_TEN[np.where(fits, np.abs(s), 0).astype(np.intp)]
        down = s < 0
        p = np.multiply(a, power)
        np.divide(a, power, out=p, where=down)
        m = np.rint(p)
        half = np.abs(p - np.floor(p) - 0.5) < 2e-6
        q = np.divide(m, power)
        np.multiply(m, power, out=q, where=down)
    safe = fits & ~half & (m >= 1e9) & (m <= 1e10)
    out = np.where(safe, np.copysign(q, values), values)
    rest = np.flatnonzero(~safe & ~done)
    out.reshape(-1)[rest] = [float(f"{x:.10g}") for x in values.reshape(-1)[rest].tolist()]
    return out


def format_floats(values: np.ndarray) -> np.ndarray:
    """Exact text for float64 values: '%.10g' where that reads back to the same float (short and
    stable, as every log written so far), otherwise the shortest repr that round-trips. NaN is
    empty (unknown). Every number in a log therefore reads back bit for bit."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, None, dtype=object)
    finite = np.isfinite(values)
    if finite.any():
        kept = values[finite]
        short = np.array([f"{v:.10g}" for v in kept.tolist()], dtype=object)  # (3x np.char.mod)
        exact = quote(kept) == kept  # float(short) == kept, without parsing the text back
        short[~exact] = [repr(float(v)) for v in kept[~exact]]
        out[finite] = short
    inf = np.isinf(values)
    out[inf] = np.where(values[inf] > 0, "inf", "-inf")
    return out


def frame_to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Canonical CSV text for a log: lossless, deterministic number text, so bytes are reproducible
    and every value reads back exactly (format_floats)."""
    lines = _line_texts(frame)
    if lines is not None:
        data, offsets = _joined(lines)
        return _header(frame) + bytes(data[offsets[0] : offsets[-1]])
    return csv_text(_numbers_as_text(frame)).encode("utf-8")  # to_csv's text: \n, ISO dates


def _header(frame: pd.DataFrame) -> bytes:
    return (",".join(str(c) for c in frame.columns) + "\n").encode("utf-8")


def _line_texts(frame: pd.DataFrame) -> pa.Array | None:
    """Each row as a log line (fields as csv_text writes the frame _numbers_as_text makes, joined
    by commas, a newline after each), made by Arrow's kernels instead of a Python string per
    field: the same text, five times faster. None where csv_text would not join the rows itself
    (fewer than two columns, a column that is not numbers, days or text, a field or column name
    that needs quoting) or this Arrow's number text is not Python's; the caller then does."""
    if len(frame.columns) < 2 or not frame.columns.is_unique or not len(frame):
        return None
    if any(ch in str(c) for c in frame.columns for ch in ',"\r\n'):
        return None
    fields = []
    try:
        for _, values in frame.items():
            text = _field_texts(values)
            if text is None:
                return None
            fields.append(text)
        empty, comma, newline = (pa.scalar(c, pa.large_string()) for c in ("", ",", "\n"))
        line = pc.binary_join_element_wise(*fields, comma)
        return pc.binary_join_element_wise(line, empty, newline)  # the line, then "\n"
    except (pa.ArrowException, UnicodeError, TypeError, ValueError):
        return None


def _field_texts(values: pd.Series) -> pa.Array | None:
    """One column's fields as large strings ('' for a missing value), as csv_columns writes it
    after _numbers_as_text; None where that gives no text or a field needs quoting."""
    dtype = values.dtype
    if dtype == np.float64:
        return _float_texts(values.to_numpy())
    if dtype == "datetime64[ns]":
        days, codes = np.unique(values.to_numpy(), return_inverse=True)
        shown = pd.DatetimeIndex(days).strftime("%Y-%m-%d").to_numpy(dtype=object)
        shown[np.isnat(days)] = ""
        return pa.array(shown, pa.large_string()).take(pa.array(codes.ravel()))
    if dtype == np.int64:
        return pa.array(values.to_numpy()).cast(pa.large_string())
    if dtype == np.bool_:
        return pa.array(np.where(values.to_numpy(), "True", "False"), pa.large_string())
    plain = isinstance(dtype, pd.StringDtype)
    text_kind = isinstance(dtype, np.dtype) and dtype.kind == "O"
    if plain or (text_kind and pd.api.types.infer_dtype(values, skipna=True) == "string"):
        text = pa.array(values.to_numpy(dtype=object), pa.large_string(), from_pandas=True)
        if pc.any(pc.match_substring_regex(text, '[,"\r\n]')).as_py():
            return None
        return text.fill_null("")
    return None


def _float_texts(values: np.ndarray) -> pa.Array | None:
    """format_floats' text with '' for NaN: Arrow's shortest text where it is '%.10g' (values
    quote() keeps, from 1e-4 up; Arrow writes smaller ones without an exponent), Python's for
    the rest. None for a column with no number (csv_columns gives it no text)."""
    missing = np.isnan(values)
    if missing.all() or not _arrow_floats_are_pythons():
        return None
    fast = np.isfinite(values) & ((np.abs(values) >= 1e-4) | (values == 0))
    fast[fast] = quote(values[fast]) == values[fast]
    text = pa.array(values).cast(pa.large_string())
    slow = ~fast
    if slow.any():
        other = format_floats(values[slow])
        other[missing[slow]] = ""
        text = pc.replace_with_mask(text, pa.array(slow), pa.array(other, pa.large_string()))
    return text


@functools.cache
def _arrow_floats_are_pythons() -> bool:
    """Whether this pyarrow writes a double that quote() keeps as Python's '%.10g' does (checked
    once, on every decimal exponent from 1e-4 to 1e308, both signs, one to ten digits)."""
    mantissas = np.array([1.0, 1.5, 2.25, 3.000000001, 1.234567891, 9.999999999, 7.0])
    with np.errstate(over="ignore"):
        v = (mantissas[:, None] * 10.0 ** np.arange(-4, 309)[None, :]).ravel()
    v = quote(np.concatenate([v, -v, [0.0, -0.0]]))
    v = v[np.isfinite(v) & (quote(v) == v)]
    return pa.array(v).cast(pa.string()).to_pylist() == [f"{x:.10g}" for x in v.tolist()]


def _joined(lines: pa.Array) -> tuple[memoryview, np.ndarray]:
    """The bytes of Arrow's string array and where each string starts (and the last ends)."""
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data), bounds


def _numbers_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its float columns as the datalog writes them (format_floats)."""
    columns = {
        col: format_floats(values.to_numpy()) if pd.api.types.is_float_dtype(values.dtype)
        else values
        for col, values in frame.items()
    }  # fmt: skip
    return pd.DataFrame(columns, index=frame.index)


def short_label(label: str) -> str:
    """`label` itself when its logfile name fits the file system, otherwise a stable shorter
    stand-in: its longest prefix that fits, '~', and 12 hex digits of its SHA-256. Vendors apply
    it to tickers before logging, so a ticker is the same (shortened) string in every log."""
    budget = MAX_NAME_BYTES - len("0000000000000000__source__ticker_fundamental_data__.csv") - 16
    if len(encode_label(label)) <= budget:
        return label
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:12]
    prefix = label
    while prefix and len(encode_label(prefix + "~" + digest)) > budget:
        prefix = prefix[:-1]
    return f"{prefix}~{digest}"


def render_log(name: LogName, frame: pd.DataFrame) -> bytes:
    """A log's bytes, after the checks every reader of the datalog applies (check_frame): a log
    that 02 would refuse is never written."""
    kind = LOG_TYPES[name.data_type]
    missing = [c for c in kind.required if c not in frame.columns]
    if missing:
        raise ValueError(f"{name.data_type} log is missing columns {missing}")
    if len(name.filename.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadInputError(
            f"label {name.label[:40]!r}...: a logfile name of {len(name.filename.encode())} bytes "
            f"is longer than file systems allow ({MAX_NAME_BYTES}); shorten it (datalog.short_label)"
        )
    data = frame_to_csv_bytes(frame)
    parse_log(data, name, f"logfile {name.filename}")  # the same checks as 02, before writing
    return data


def render_logs(names: list[LogName], frame: pd.DataFrame, starts) -> list[bytes]:
    """render_log of many logs of one type at once (a vendor's thousands of per-ticker logs):
    log k is the rows starts[k]:starts[k + 1] of `frame`. Numbers, dates and lines are formatted
    once for all rows and the logs checked as 02 reads them, in batches (parse_many); the bytes
    are render_log's, log by log. Logs that need quoting are rendered one by one, and a batch
    that fails a check is checked log by log, so the message names the log."""
    starts = np.asarray(starts, dtype=np.int64)
    spans = list(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True))

    def one_by_one() -> list[bytes]:
        return [render_log(n, frame.iloc[a:b]) for n, (a, b) in zip(names, spans, strict=True)]

    kind = LOG_TYPES[names[0].data_type] if names else None
    if (
        kind is None
        or any(c not in frame.columns for c in kind.required)
        or any(len(n.filename.encode("utf-8")) > MAX_NAME_BYTES for n in names)
        or any(b <= a for a, b in spans)
    ):
        return one_by_one()
    texts = _line_texts(frame)
    if texts is not None:
        header, (data, at) = _header(frame), _joined(texts)
        out = [header + data[at[a] : at[b]] for a, b in spans]
    else:
        formatted = _numbers_as_text(frame)
        lines = csv_lines(formatted.columns, csv_columns(formatted)[1])
        if lines is None:
            return one_by_one()
        header, rows = lines[0] + "\n", lines[1:]
        out = [(header + "\n".join(rows[a:b]) + "\n").encode("utf-8") for a, b in spans]
    batch, size = [], 0
    for k, name in enumerate(names):
        batch.append((name, out[k]))
        size += len(out[k])
        if size >= 64 << 20 or k == len(names) - 1:
            if parse_many(batch) is None:  # the same checks as 02, before writing
                for n, data in batch:
                    parse_log(data, n, f"logfile {n.filename}")
            batch, size = [], 0
    return out


def write_log(datalog_dir: str | Path, name: LogName, frame: pd.DataFrame) -> tuple[Path, bool]:
    """Write a log once. Returns (path, written). Same name + same bytes: skipped as already logged;
    same name + different bytes: an error, because a logfile is never replaced."""
    return write_log_bytes(datalog_dir, name, render_log(name, frame))


def write_log_bytes(datalog_dir: str | Path, name: LogName, data: bytes) -> tuple[Path, bool]:
    """write_log for bytes already rendered (and so checked) by render_log."""
    path = Path(datalog_dir) / name.filename
    return path, write_logs_bytes(datalog_dir, [(name, data)])[0]


def write_logs_bytes(datalog_dir: str | Path, logs: list[tuple[LogName, bytes]]) -> list[bool]:
    """write_log_bytes of many logs at once (storage.atomic_write_many: written, then synced,
    then linked together, which costs the disk far less). Per log, whether it was written
    (False: the same bytes were logged already)."""
    paths = [Path(datalog_dir) / name.filename for name, _ in logs]
    written = atomic_write_many(
        [(path, data) for path, (_, data) in zip(paths, logs, strict=True)], overwrite=False
    )
    for path, (_, data), new in zip(paths, logs, written, strict=True):
        if not new and path.read_bytes() != data:
            raise BadInputError(
                f"datalog file {path} already exists with different content; logfiles are "
                "never replaced. Use another datalog directory (e.g. for another seed) or "
                "another timestamp."
            )
    return written


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
    columns = [c.strip() for c in next(csv.reader([header]), [])]
    if (
        '"' in header
        or len(set(columns)) != len(columns)
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
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body),
            read_options=pa_csv.ReadOptions(
                column_names=columns, use_threads=False, block_size=1 << 26
            ),
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
    if body.startswith(b"\n") or any(  # a blank line in any log is a blank line here)
        mark in text for text in (header, body) for mark in (b"\r", b'"', b"\n\n", b"\x00")
    ):
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
    lines = _line_numbers(text)
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
    for line_no, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if line_no > 1 and fields:
            out[line_no] = len(fields)
    return out


def check_frame(
    name: LogName, frame: pd.DataFrame, where: str, rows=None, *, group=None, timestamps=None
) -> None:
    """The content rules of a log, shared by 01 (before writing) and 02 (when reading):
    nothing dated after the query time, one row per key, known corporate actions, no empty
    ticker, and no report announced before its period ended. `rows` gives the row number to
    name for each frame row (default: the logfile's line numbers with the header on line 1).
    The rows of many logs of name's type are checked at once, each against its own log, with
    `group` (the log of each row) and `timestamps` (each log's query time, as in LogName)."""
    kind: LogType = LOG_TYPES[name.data_type]
    rows = np.arange(2, len(frame) + 2) if rows is None else np.asarray(rows)
    if group is not None:  # each log's own keys: the log becomes part of every key
        frame = frame.assign(_log=group)
    keyed = ["_log"] if group is not None else []

    def fail(col: str, mask: np.ndarray, what: str) -> BadInputError:
        i = int(np.flatnonzero(mask)[0])
        value = frame[col].iloc[i]
        shown = f"{value:%Y-%m-%d}" if isinstance(value, pd.Timestamp) else repr(value)
        return BadInputError(
            f"{where}, row {rows[i]}, field '{col}': {shown} {what}; fix the export or remove "
            "it from the datalog and query again"
        )

    query_time = np.datetime64(name.timestamp, "us")
    if group is not None:
        query_time = np.asarray(timestamps, dtype=np.int64)[group].astype("datetime64[us]")
    for col in kind.dates:
        if col != "period_end" and col in frame:
            late = frame[col].to_numpy() > query_time
            if late.any():
                when = pd.Timestamp(query_time if group is None else query_time[late.argmax()])
                raise fail(
                    col,
                    late,
                    f"is after the query time {when:%Y-%m-%d %H:%M} UTC (a query cannot "
                    "return the future; for an import, set exported_at to when it was exported)",
                )
    if "ticker" in frame:
        empty = (
            frame["ticker"].isna().to_numpy()
            | (frame["ticker"].astype(str).str.strip() == "").to_numpy()
        )
        if empty.any():
            raise fail("ticker", empty, "is empty; every row needs a ticker")
    if (
        kind.unique
        and all(c in frame for c in kind.unique)
        and not keys_increase(frame, (*keyed, *kind.unique))
    ):
        dup = frame.duplicated([*keyed, *kind.unique], keep="first").to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            key = frame[list(kind.unique)].iloc[i]
            first = int(np.flatnonzero((frame[list(kind.unique)] == key).all(axis=1).to_numpy())[0])
            raise fail(
                kind.unique[0],
                dup,
                f"appears more than once (first at row {rows[first]}); a {name.data_type} log "
                f"holds one row per {' and '.join(kind.unique)}",
            )
    if name.data_type == "corporate_actions":
        bad = ~frame["action"].isin(CORPORATE_ACTIONS).to_numpy()
        if bad.any():
            raise fail("action", bad, f"is not one of {', '.join(CORPORATE_ACTIONS)}")
        for action in ("split", "delisting"):  # only dividends on one day add up
            rows_of = frame[frame["action"] == action]
            dup = (
                rows_of.duplicated([*keyed, "date"])
                .reindex(frame.index, fill_value=False)
                .to_numpy()
            )
            if dup.any():
                raise fail("date", dup, f"has a second {action} on the same day")
    if name.data_type == "ticker_fundamental_data":
        early = (frame["announcement_date"] < frame["period_end"]).to_numpy()
        if early.any():
            raise fail(
                "announcement_date",
                early,
                "is before the period end; figures cannot be public before their period ends "
                "(check that period end and announcement date are not swapped)",
            )


def keys_increase(frame: pd.DataFrame, keys) -> bool:
    """Whether the rows' keys strictly increase row by row (in the order of `keys`), so no key
    repeats: dates as vendors send them need no search for repeats, and rows sorted by their keys
    need no merge. False where a key is missing or its values do not compare."""
    if len(frame) < 2:
        return True
    later = np.zeros(len(frame) - 1, dtype=bool)
    tied = np.ones(len(frame) - 1, dtype=bool)
    for key in keys:
        values = comparable(frame[key])
        if values.dtype.kind not in "MiO" or pd.isna(values).any():
            return False
        try:
            later |= tied & (values[1:] > values[:-1])
            tied &= values[1:] == values[:-1]
        except TypeError:  # text and numbers in one column
            return False
    return bool(later.all())


def comparable(column: pd.Series) -> np.ndarray:
    """A column's values, or for text dictionary-encoded on sorted categories its codes, which
    order as the text does (a missing value becomes NaN)."""
    if (
        isinstance(column.dtype, pd.CategoricalDtype)
        and column.cat.categories.is_monotonic_increasing
    ):
        codes = column.cat.codes.to_numpy()
        return codes if (codes >= 0).all() else np.where(codes >= 0, codes, np.nan)
    return column.to_numpy()


def _parse_numbers(col: pd.Series, where: str, name: str, rows: np.ndarray) -> pd.Series:
    arr, bad = textio.parse_floats(col)
    if bad.any():
        raise _bad_row(where, name, col, bad, "a number", rows)
    if np.isinf(arr).any():
        raise _bad_row(where, name, col, np.isinf(arr), "a finite number", rows)
    return pd.Series(arr, index=col.index)


def _parse_dates(col: pd.Series, where: str, name: str, rows: np.ndarray) -> pd.Series:
    values = pd.to_datetime(col.str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = values.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        raise _bad_row(where, name, col, bad, "a date written YYYY-MM-DD", rows)
    return values.astype("datetime64[ns]")


def _bad_row(
    where: str, col: str, raw: pd.Series, mask: np.ndarray, what: str, rows: np.ndarray
) -> BadInputError:
    i = int(np.flatnonzero(mask)[0])
    return BadInputError(
        f"{where}, row {rows[i]}, field '{col}': {raw.iloc[i]!r} is not {what}; "
        "fix the export or remove the file from the datalog and query again"
    )
