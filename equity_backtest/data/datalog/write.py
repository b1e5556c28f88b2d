"""Writing logfiles: numbers as exact text (Arrow's kernels where they write what Python
writes, Python's repr otherwise), a log's bytes, and write-once placement (temp file, fsync,
link; an existing log is never replaced)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import BadInputError
from ...infra.storage import atomic_write_many, csv_columns, csv_lines, csv_text
from ..vocabulary import LOG_TYPES
from .names import MAX_NAME_BYTES, LogName
from .read import parse_log, parse_many

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
