"""The datalog (D1): immutable vendor responses, one CSV per query, named so that names sort by time.

    datalog/<timestamp>__<source>__<data_type>__<label>.csv

timestamp: UTC epoch microseconds, 16 digits. source: lowercase vendor name. data_type: one of
DATA_TYPES. label: what was asked, percent-encoded so that '/', '\\', '__' and leading/trailing '_'
can never appear and the original is recoverable with `decode_label`.

Logfiles are written once (temp file + atomic link) and never edited or deleted by the pipeline.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadInputError
from .storage import atomic_write_bytes

# Columns every logfile of a type must have; extra columns are allowed where noted.
SCHEMAS: dict[str, dict] = {
    # label: <YYYYMMDD>_<INDEX>; members of an index on a list date (weight may be blank)
    "constituent_list": {
        "required": ["date", "index", "ticker", "weight"],
        "numeric": ["weight"],
        "dates": ["date"],
        "extra_numeric": False,
    },
    # label: what was asked (an index name or 'universe'); one row per ticker
    "metadata_array": {
        "required": ["ticker", "name", "sector"],
        "numeric": [],
        "dates": [],
        "extra_numeric": False,
    },
    # label: the ticker; raw (unadjusted) daily prices and volume
    "ticker_market_data": {
        "required": ["date", "open", "high", "low", "close", "volume", "market_cap"],
        "numeric": ["open", "high", "low", "close", "volume", "market_cap"],
        "dates": ["date"],
        "extra_numeric": True,
    },
    # label: the ticker; one row per reported period, any further columns are numeric metrics
    "ticker_fundamental_data": {
        "required": ["period_end", "announcement_date"],
        "numeric": [],
        "dates": ["period_end", "announcement_date"],
        "extra_numeric": True,
    },
    # label: the ticker. Added type: splits, dividends and delisting values cannot be recovered
    # from raw prices alone, and the engine needs them to keep accounts right (E7).
    "corporate_actions": {
        "required": ["date", "action", "value"],
        "numeric": ["value"],
        "dates": ["date"],
        "extra_numeric": False,
    },
}
DATA_TYPES = tuple(SCHEMAS)
CORPORATE_ACTIONS = ("split", "dividend", "delisting")

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
    if data_type not in SCHEMAS:
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
    for p in root.iterdir():
        if p.name.startswith(".") or not p.is_file():
            continue
        try:
            out.append((parse_name(p.name), p))
        except BadInputError as exc:
            if bad is None:
                raise
            bad.append((p, exc))
    out.sort(key=lambda item: (item[0], item[1].name))
    return out


def frame_to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Canonical CSV text for a log: fixed float formatting so bytes are reproducible."""
    buf = io.StringIO()
    frame.to_csv(
        buf, index=False, lineterminator="\n", float_format="%.10g", date_format="%Y-%m-%d"
    )
    return buf.getvalue().encode("utf-8")


def write_log(datalog_dir: str | Path, name: LogName, frame: pd.DataFrame) -> tuple[Path, bool]:
    """Write a log once. Returns (path, written). Same name + same bytes: skipped as already logged;
    same name + different bytes: an error, because a logfile is never replaced."""
    schema = SCHEMAS[name.data_type]
    missing = [c for c in schema["required"] if c not in frame.columns]
    if missing:
        raise ValueError(f"{name.data_type} log is missing columns {missing}")
    path = Path(datalog_dir) / name.filename
    data = frame_to_csv_bytes(frame)
    if atomic_write_bytes(path, data, overwrite=False):
        return path, True
    if path.read_bytes() != data:
        raise BadInputError(
            f"datalog file {path} already exists with different content; logfiles are never "
            "replaced. Use another datalog directory (e.g. for another seed) or another timestamp."
        )
    return path, False


def read_log(path: str | Path, name: LogName | None = None) -> pd.DataFrame:
    """Read and validate one logfile into typed columns.

    Raises BadInputError naming the file, row and field. Rows are counted as lines of the file,
    the header being row 1, so "row 6" is what an editor shows as line 6.
    """
    path = Path(path)
    name = name or parse_name(path.name)
    schema = SCHEMAS[name.data_type]
    where = f"datalog file {path.name}"
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=True
        )
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
    missing = [c for c in schema["required"] if c not in raw.columns]
    if missing:
        raise BadInputError(
            f"{where}: header lacks column(s) {missing}; a {name.data_type} log needs "
            f"{schema['required']} (found {list(raw.columns)})"
        )
    if raw.empty:
        raise BadInputError(f"{where}: a header but no rows; re-run the vendor query for it")
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:  # pandas pads short rows
        for line_no, fields in enumerate(csv.reader(fh), start=1):
            if line_no == 1:
                width = len(fields)
            elif fields and len(fields) != width:
                raise BadInputError(
                    f"{where}, row {line_no}: expected {width} fields, found {len(fields)} "
                    "(a truncated or damaged row); re-export or query it again"
                )
    out = pd.DataFrame(index=raw.index)
    numeric = list(schema["numeric"])
    if schema["extra_numeric"]:
        numeric += [c for c in raw.columns if c not in schema["required"]]
    for col in raw.columns:
        if col in schema["dates"]:
            out[col] = _parse_dates(raw[col], where, col)
        elif col in numeric:
            out[col] = _parse_numbers(raw[col], where, col)
        else:
            out[col] = raw[col].astype(object).where(raw[col].notna(), None)
    query_time = pd.Timestamp(name.timestamp, unit="us")
    for col in schema["dates"]:
        if col == "period_end" or col not in out:
            continue
        late = (out[col] > query_time).to_numpy()
        if late.any():
            raise BadInputError(
                _bad_row(
                    where,
                    col,
                    raw[col],
                    late,
                    f"on or before the query time "
                    f"{query_time:%Y-%m-%d} (a query cannot return the future)",
                ).args[0]
            )
    return out


def _bad_row(where: str, col: str, raw: pd.Series, mask: np.ndarray, what: str) -> BadInputError:
    i = int(np.flatnonzero(mask)[0])
    return BadInputError(
        f"{where}, row {i + 2}, field '{col}': {raw.iloc[i]!r} is not {what}; "
        "fix the export or remove the file from the datalog and query again"
    )


def _parse_numbers(col: pd.Series, where: str, name: str) -> pd.Series:
    values = pd.to_numeric(col.str.strip(), errors="coerce")
    bad = values.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        raise _bad_row(where, name, col, bad, "a number")
    arr = values.to_numpy(dtype=float)
    if np.isinf(arr).any():
        raise _bad_row(where, name, col, np.isinf(arr), "a finite number")
    return pd.Series(arr, index=col.index)


def _parse_dates(col: pd.Series, where: str, name: str) -> pd.Series:
    values = pd.to_datetime(col.str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = values.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        raise _bad_row(where, name, col, bad, "a date written YYYY-MM-DD")
    return values.astype("datetime64[ns]")
