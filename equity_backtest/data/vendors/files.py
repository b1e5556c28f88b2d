"""The file vendor (D4): import CSV, Parquet or Excel exports into the datalog through a declarative
mapping (TOML). One input file may feed several outputs (a wide table with prices and ratios gives
market data and fundamentals).

    source = "datastream"                 # lowercase vendor name for the datalog
    format = "csv"                        # csv | parquet | excel (default: from the file suffix)
    exported_at = "2024-06-30"            # the query time: a date or an ISO 8601 time (with Z or an
                                          # offset; default: the file's modification time); each
                                          # input file gets a fixed offset from it, so names of
                                          # several imports never clash
    [read]                                # passed to the pandas reader (delimiter, sheet_name, ...);
                                          # encoding = "cp1252" for a non-UTF-8 CSV
    [[output]]
    data_type = "ticker_market_data"      # or ticker_fundamental_data, constituent_list, metadata_array
    shape = "wide"                        # wide: one column per ticker; long: a row per ticker and date
    date = "Date"                         # the date column
    date_format = "%d/%m/%Y"              # strftime format of the dates (default: ISO; dates such
                                          # as 02/01/2019 that read both ways need it)
    field = "close"                       # wide: what the cells hold
    ticker = "Symbol"                     # long: the ticker column
    ticker_name = "SPX"                   # long, one security: a constant ticker instead
    announcement_date = "Filing Date"     # fundamentals: when the figure became public (optional)
    index = "Index"                       # constituents: the index column (or index_name = "SP500")
    [output.columns]                      # long: our name = their column
    close = "Price"
    [output.units]                        # multiply a field after reading, e.g. millions -> units
    market_cap = 1e6

Each ticker's rows become one logfile per output (constituents: one per list date), named and
written like every vendor's; rerunning the same import writes nothing new. Every log is checked
with the rules 02 applies before any is written: a bad import writes nothing, and the message names
the input file, row and column. Unknown mapping keys are errors (with a suggestion), numbers are
kept exactly, and a ticker too long for a file name is shortened to a prefix and a hash.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import logging
import re
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import BadInputError, some
from .. import textio
from ..datalog import LogName, check_frame, render_log, short_label, write_log_bytes
from ..datalog.checks import FIRST_DAY, LAST_DAY
from ..vocabulary import LOG_TYPES

log = logging.getLogger(__name__)
READERS = {"csv": pd.read_csv, "parquet": pd.read_parquet, "excel": pd.read_excel}
MAPPING_KEYS = ("source", "format", "exported_at", "read", "output", "label", "query")
OUTPUT_KEYS = (
    "data_type", "shape", "date", "date_format", "field", "ticker", "ticker_name",
    "announcement_date", "index", "index_name", "columns", "units", "skip_columns",
)  # fmt: skip
ROW = "_row"  # the input row each output row came from, for messages
_DMY = re.compile(r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\s*$")


def _unknown_keys(found, known: tuple[str, ...], where: str) -> None:
    for key in found:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise BadInputError(
                f"{where}: unknown key {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; known keys: {', '.join(known)}"
            )


def load_mapping(path: str | Path, *, sql: bool = False) -> dict:
    """Read and check a mapping: known keys only, and every output complete for its shape. A
    mapping for the SQL vendor (`sql`) has a `query` and no `exported_at` (its time is now)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"mapping file {path} not found")
    try:
        mapping = tomllib.loads(textio.read_text(path, f"mapping file {path}"))
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"mapping file {path}: not valid TOML ({exc})") from None
    _unknown_keys(mapping, MAPPING_KEYS, f"mapping file {path}")
    if sql and not str(mapping.get("query", "")).strip():
        raise BadInputError(f'mapping file {path}: needs query = "SELECT ..." (the SQL to run)')
    if sql and "exported_at" in mapping:
        raise BadInputError(
            f"mapping file {path}: a query's time is when it runs; drop exported_at"
        )
    if not sql and "query" in mapping:
        raise BadInputError(
            f"mapping file {path}: 'query' belongs to SQL mappings (sql_mappings in "
            "parameters.py); a file import reads its input file"
        )
    source = mapping.get("source", "")
    if not isinstance(source, str) or not source.isalnum() or source != source.lower():
        raise BadInputError(
            f"mapping file {path}: 'source' must be a lowercase vendor name, e.g. \"datastream\""
        )
    outputs = mapping.get("output")
    if not outputs or not isinstance(outputs, list):
        raise BadInputError(f"mapping file {path}: no [[output]] section")
    for k, out in enumerate(outputs, start=1):
        where = f"mapping file {path}, output {k}"
        _unknown_keys(out, OUTPUT_KEYS, where)
        dtype, shape = out.get("data_type"), out.get("shape", "long")
        if dtype not in LOG_TYPES:
            raise BadInputError(f"{where}: data_type must be one of {', '.join(LOG_TYPES)}")
        if shape not in ("long", "wide"):
            raise BadInputError(f"{where}: shape must be 'long' or 'wide'")
        if shape == "wide" and not out.get("field"):
            raise BadInputError(f"{where}: a wide output needs 'field' (what the cells hold)")
        if dtype != "metadata_array" and not out.get("date"):
            raise BadInputError(f"{where}: needs 'date', the name of the date column")
        if shape == "long" and not (out.get("ticker") or out.get("ticker_name")):
            raise BadInputError(
                f"{where}: needs 'ticker' (the ticker column) or 'ticker_name' (one ticker for "
                "every row, e.g. an index series)"
            )
        if out.get("ticker") and out.get("ticker_name"):
            raise BadInputError(f"{where}: give 'ticker' or 'ticker_name', not both")
        if dtype == "constituent_list" and not (out.get("index") or out.get("index_name")):
            raise BadInputError(f"{where}: needs 'index' (a column) or 'index_name' (a constant)")
        for key in ("columns", "units"):
            if not isinstance(out.get(key, {}), dict):
                raise BadInputError(f"{where}: [{key}] must be a table of name = value")
        for name, factor in out.get("units", {}).items():
            if not isinstance(factor, int | float) or not np.isfinite(factor) or factor == 0:
                raise BadInputError(f"{where}, units.{name}: {factor!r} is not a non-zero number")
    return mapping


def exported_at(mapping: dict, input_path: Path, where: str) -> dt.datetime:
    """The query time of an import: exported_at (a date, or a time in UTC or with an offset),
    else the input file's modification time."""
    stamp = mapping.get("exported_at")
    if stamp is None:
        return dt.datetime.fromtimestamp(input_path.stat().st_mtime, tz=dt.UTC)
    if isinstance(stamp, dt.datetime):
        moment = stamp
    elif isinstance(stamp, dt.date):
        moment = dt.datetime.combine(stamp, dt.time())
    else:
        try:
            moment = dt.datetime.fromisoformat(str(stamp).strip())
        except ValueError:
            raise BadInputError(
                f"{where}: exported_at = {stamp!r} is not an ISO 8601 date or time; write it as "
                '"2023-01-03" or "2023-01-03T10:00:00Z"'
            ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _read(path: Path, mapping: dict) -> pd.DataFrame:
    """The input as a frame with a `_row` column: the row number a person sees (CSV and Excel:
    the line, header on line 1, blank lines counted; Parquet: the 1-based row)."""
    fmt = mapping.get("format") or {
        ".csv": "csv",
        ".txt": "csv",
        ".parquet": "parquet",
        ".xlsx": "excel",
        ".xls": "excel",
    }.get(path.suffix.lower())
    if fmt not in READERS:
        raise BadInputError(
            f'input {path}: unknown format; set format = "csv", "parquet" or "excel" in the mapping'
        )
    if not path.is_file():
        raise BadInputError(f"input file {path} not found")
    where = f"input {path}"
    options = dict(mapping.get("read", {}))
    try:
        if fmt == "csv":
            text = textio.read_text(path, where, options.pop("encoding", None))
            _no_repeated_header(text, options, where)
            # as text: numbers are then converted exactly (textio.parse_floats), dates by rule
            options.setdefault("dtype", str)
            decimal, thousands = options.pop("decimal", "."), options.pop("thousands", None)
            frame = pd.read_csv(io.StringIO(text), skip_blank_lines=False, **options)
            frame = _localised_numbers(frame, decimal, thousands)
            first = 2
        elif fmt == "excel":
            with pd.ExcelFile(path) as book:
                frame = book.parse(**options)
                sheets = list(book.sheet_names)
            chosen = options.get("sheet_name", 0)
            frame.attrs["sheet"] = (
                f"sheet {sheets[chosen]!r}" if isinstance(chosen, int) and chosen < len(sheets)
                else f"sheet {chosen!r}"
            )  # fmt: skip
            frame.attrs["sheets"] = sheets
            first = 2
        else:
            frame = READERS[fmt](path, **options)
            first = 1
    except BadInputError:
        raise
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{where}: the file is empty") from None
    except (ValueError, OSError, ImportError, TypeError, pd.errors.ParserError) as exc:
        raise BadInputError(f"{where}: could not read it as {fmt} ({exc})") from None
    attrs = dict(frame.attrs)
    frame = frame.reset_index(drop=True)
    frame.insert(0, ROW, np.arange(first, len(frame) + first))
    empty = frame.drop(columns=ROW).isna().all(axis=1).to_numpy()
    frame = frame[~empty].reset_index(drop=True)
    frame.attrs.update(attrs)
    return frame


def _localised_numbers(frame: pd.DataFrame, decimal: str, thousands: str | None) -> pd.DataFrame:
    """Cells written as localised numbers ([read] decimal = ",", thousands = ".") rewritten the
    way the exact parser reads them ("1.234,5" -> "1234.5"). Only cells that are whole numbers
    in that style change: a date such as 01.02.2019 does not match and is left alone."""
    if decimal == "." and not thousands:
        return frame
    group = rf"\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})*" if thousands else r"\d+"
    pattern = rf"^\s*[-+]?{group}(?:{re.escape(decimal)}\d+)?\s*$"
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype != object and str(out[col].dtype) not in ("str", "string"):
            continue
        text = out[col].astype(object).where(out[col].notna(), "").astype(str)
        hit = text.str.fullmatch(pattern)
        if hit.any():
            fixed = text[hit].str.strip()
            if thousands:
                fixed = fixed.str.replace(thousands, "", regex=False)
            out.loc[hit, col] = fixed.str.replace(decimal, ".", regex=False)
    return out


def _no_repeated_header(text: str, options: dict, where: str) -> None:
    """pandas renames a repeated column ('AAPL', 'AAPL.1'): refuse it instead."""
    delimiter = options.get("sep", options.get("delimiter", ","))
    if not isinstance(delimiter, str) or len(delimiter) != 1 or options.get("header", 0) != 0:
        return
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    seen = set()
    for col in (h.strip() for h in header):
        if col and col in seen:
            raise BadInputError(
                f"{where}, row 1: column {col!r} appears twice; give each column one name"
            )
        seen.add(col)


def _column(frame: pd.DataFrame, name: str, where: str) -> pd.Series:
    if name not in frame.columns:
        found = [c for c in frame.columns if c != ROW]
        sheets = frame.attrs.get("sheets")
        where_in = f"{where}, {frame.attrs['sheet']}" if sheets else where
        advice = (
            f"; the workbook's sheets are {some(sheets)}: name the one with the data as "
            'sheet_name = "..." under [read] in the mapping'
            if sheets and len(sheets) > 1
            else ""
        )
        if "Unnamed: 0" in found:  # pandas' name for a header cell left empty (an index's)
            advice += '; the first column has no name in the file: write "Unnamed: 0" for it'
        raise BadInputError(f"{where_in}: no column {name!r} (found {some(found)}){advice}")
    return frame[name]


def _fail(where: str, rows: pd.Series, mask, column: str, what: str) -> BadInputError:
    i = int(np.flatnonzero(np.asarray(mask))[0])
    return BadInputError(f"{where}, row {rows.iloc[i]}, column {column!r}: {what(i)}")


def _dates(values: pd.Series, fmt: str | None, where: str, column: str, rows) -> pd.Series:
    """Parse a date column. Without a format: ISO dates, or day/month dates that read only one
    way; a column that reads both ways (02/01/2019) is refused, asking for date_format."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.to_datetime(values)
    else:
        text = values.astype(str).str.strip().where(values.notna())
        if fmt:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        else:
            parsed = _guess_dates(text, where, column, rows)
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise _fail(
                where,
                rows,
                bad,
                column,
                lambda i: (
                    f"{values.iloc[i]!r} is not a date"
                    + (f" in the format {fmt!r}" if fmt else "; set date_format in the mapping")
                ),
            )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    parsed = parsed.dt.normalize()
    outside = (parsed < FIRST_DAY) | (parsed > LAST_DAY)  # (pandas 3 reads 0001-01-01)
    if outside.any():
        raise _fail(
            where, rows, outside, column,
            lambda i: f"{values.iloc[i]!r} is not a date from {FIRST_DAY:%Y-%m-%d} to {LAST_DAY:%Y-%m-%d}",
        )  # fmt: skip
    return parsed.astype("datetime64[ns]")


def _guess_dates(text: pd.Series, where: str, column: str, rows) -> pd.Series:
    iso = pd.to_datetime(text, format="ISO8601", errors="coerce")
    if not (iso.isna() & text.notna()).any():
        return iso
    unique = pd.Series(text.dropna().unique())
    if len(unique) and unique.str.match(_DMY).all():
        norm = unique.str.strip().str.replace(r"[.\-]", "/", regex=True)
        year = "%Y" if (norm.str.len() - norm.str.rfind("/") > 3).all() else "%y"
        month_first = pd.to_datetime(norm, format=f"%m/%d/{year}", errors="coerce")
        day_first = pd.to_datetime(norm, format=f"%d/%m/{year}", errors="coerce")
        if month_first.notna().all() and day_first.notna().all():
            differ = (month_first != day_first).to_numpy()
            if differ.any():
                example = unique[differ].iloc[0]
                at = np.flatnonzero((text == example).to_numpy())
                raise BadInputError(
                    f"{where}, row {rows.iloc[at[0]]}, column {column!r}: {example!r} reads as "
                    "both day/month and month/day; set date_format in the mapping (e.g. "
                    '"%d/%m/%Y" or "%m/%d/%Y")'
                )
        chosen = day_first if day_first.notna().all() else month_first
        return text.map(dict(zip(unique, chosen, strict=True)))
    return pd.to_datetime(text, format="mixed", errors="coerce")


def _numbers(values: pd.Series, where: str, column: str, rows) -> pd.Series:
    parsed, bad = textio.parse_floats(values)
    if bad.any():
        raise _fail(where, rows, bad, column, lambda i: f"{values.iloc[i]!r} is not a number")
    out = pd.Series(parsed, index=values.index)
    inf = np.isinf(out.to_numpy())
    if inf.any():
        raise _fail(where, rows, inf, column, lambda i: f"{values.iloc[i]!r} is not finite")
    return out


def _tickers(values: pd.Series, where: str, column: str, rows) -> pd.Series:
    """Stripped ticker text; an empty ticker is an error (a row is never dropped silently)."""
    text = values.astype(str).str.strip()
    empty = values.isna().to_numpy() | (text == "").to_numpy()
    if empty.any():
        raise _fail(where, rows, empty, column, lambda i: "the ticker is empty")
    return text.map(short_label)


def _wide_tickers(frame: pd.DataFrame, out: dict, where: str) -> list[str]:
    skip = {out["date"], ROW, *out.get("skip_columns", [])}
    tickers = []
    for k, col in enumerate(frame.columns):
        if col in skip:
            continue
        if not str(col).strip() or str(col).startswith("Unnamed:"):
            if frame[col].notna().any():
                raise BadInputError(
                    f"{where}, row 1: column {k + 1} holds data but has no ticker in its header"
                )
            continue
        tickers.append(col)
    return tickers


def _long_frame(frame: pd.DataFrame, out: dict, where: str) -> pd.DataFrame:
    """Our long table (ticker, date[, announcement_date], fields, _row) from one output spec."""
    dtype = out["data_type"]
    kind = LOG_TYPES[dtype]
    rows = frame[ROW]
    cols = dict(out.get("columns", {}))
    if out.get("shape") == "wide":
        date = _dates(
            _column(frame, out["date"], where), out.get("date_format"), where, out["date"], rows
        )
        tickers = _wide_tickers(frame, out, where)
        data = frame[[ROW, *tickers]].assign(date=date.to_numpy())
        data = data.melt(id_vars=["date", ROW], var_name="ticker", value_name=out["field"])
        data["ticker"] = data["ticker"].astype(str).str.strip().map(short_label)
        data[out["field"]] = _numbers(data[out["field"]], where, out["field"], data[ROW])
        data = data.dropna(subset=[out["field"]])
    else:
        data = pd.DataFrame({ROW: rows})
        if dtype != "metadata_array":
            key = "period_end" if dtype == "ticker_fundamental_data" else "date"
            data[key] = _dates(
                _column(frame, out["date"], where), out.get("date_format"), where, out["date"], rows
            )
        if out.get("ticker_name"):
            data["ticker"] = short_label(str(out["ticker_name"]).strip())
        else:
            data["ticker"] = _tickers(
                _column(frame, out["ticker"], where), where, out["ticker"], rows
            )
        if out.get("announcement_date"):
            data["announcement_date"] = _dates(
                _column(frame, out["announcement_date"], where),
                out.get("date_format"),
                where,
                out["announcement_date"],
                rows,
            )
        if dtype == "constituent_list":
            data["index"] = out.get("index_name") or _column(frame, out["index"], where).astype(str)
        for ours, theirs in cols.items():
            raw = _column(frame, theirs, where)
            text = dtype == "metadata_array" or (ours in kind.required and ours not in kind.numeric)
            data[ours] = raw.astype(str).str.strip() if text else _numbers(raw, where, theirs, rows)
        if dtype == "corporate_actions" and "action" in data:
            data["action"] = data["action"].str.lower()  # "Split" and "DIVIDEND" read as ours
    for field, factor in out.get("units", {}).items():
        if field not in data:
            raise BadInputError(f"{where}: units names {field!r}, which this output does not map")
        data[field] = data[field] * float(factor)
    if dtype == "ticker_market_data":  # fields an export lacks stay empty (unknown)
        for field in kind.required:
            if field not in data:
                data[field] = np.nan
    if dtype == "ticker_fundamental_data" and "announcement_date" not in data:
        data["announcement_date"] = pd.NaT
    if dtype == "constituent_list" and "weight" not in data:
        data["weight"] = np.nan
    return data


def _logs_of(data: pd.DataFrame, dtype: str, mapping: dict) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per logfile: constituents per list, metadata whole, others per ticker."""
    if dtype == "constituent_list":
        return [(f"{d:%Y%m%d}_{i}", g) for (d, i), g in data.groupby(["date", "index"], sort=True)]
    if dtype == "metadata_array":
        return [(mapping.get("label", "universe"), data)]
    return list(data.groupby("ticker", sort=True))


def query(
    mapping_path: str | Path, input_path: str | Path, datalog_dir: str | Path
) -> dict[str, int]:
    """Import one file through its mapping into the datalog. Every log is rendered and checked
    (the checks 02 applies) before the first is written, so a bad import writes nothing.
    Returns counts of logs written/already there."""
    mapping = load_mapping(mapping_path)
    input_path = Path(input_path)
    frame = _read(input_path, mapping)
    moment = exported_at(mapping, input_path, f"mapping file {mapping_path}")
    # a distinct, deterministic offset per input file, so imports with one export date never clash
    base = (
        int(moment.timestamp() * 1_000_000)
        + (zlib.crc32(input_path.name.encode()) % 100_000) * 10_000
    )
    counts = import_frame(
        frame,
        mapping,
        base,
        datalog_dir,
        f"input {input_path.name} (mapping {Path(mapping_path).name}",
    )
    log.info(
        "file vendor %s: %s -> %d logs written, %d already there",
        mapping["source"],
        input_path.name,
        counts["written"],
        counts["already_logged"],
    )
    return counts


def import_frame(
    frame: pd.DataFrame, mapping: dict, base: int, datalog_dir: str | Path, where: str
) -> dict[str, int]:
    """A table (with its `_row` column) through a mapping's outputs into logfiles with
    timestamps from `base` on: every log rendered and checked before the first is written.
    Shared by file imports and SQL queries."""
    rendered: list[tuple[LogName, bytes]] = []
    for n, out in enumerate(mapping["output"], start=1):
        here = f"{where}, output {n})"
        dtype = out["data_type"]
        data = _long_frame(frame, out, here)
        for label, group in _logs_of(data, dtype, mapping):
            keep = [c for c in group.columns if c != ROW and (c != "ticker" or dtype in (
                "constituent_list", "metadata_array"))]  # fmt: skip
            body = group if dtype == "metadata_array" else group.sort_values(keep[0], kind="stable")
            name = LogName(base + len(rendered), mapping["source"], dtype, str(label))
            check_frame(name, body[keep].reset_index(drop=True), here, body[ROW].to_numpy())
            rendered.append((name, render_log(name, body[keep])))
    counts = {"written": 0, "already_logged": 0}
    for name, data in rendered:
        _, written = write_log_bytes(datalog_dir, name, data)
        counts["written" if written else "already_logged"] += 1
    return counts
