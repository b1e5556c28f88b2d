"""The file vendor (D4): import CSV, Parquet or Excel exports into the datalog through a declarative
mapping (TOML). One input file may feed several outputs (a wide table with prices and ratios gives
market data and fundamentals).

    source = "datastream"                 # lowercase vendor name for the datalog
    format = "csv"                        # csv | parquet | excel (default: from the file suffix)
    exported_at = "2024-06-30"            # the query time (default: the file's modification time);
                                          # each input file gets a fixed offset from it, so names
                                          # of several imports never clash
    [read]                                # passed to the pandas reader (delimiter, sheet_name, ...)
    [[output]]
    data_type = "ticker_market_data"      # or ticker_fundamental_data, constituent_list, metadata_array
    shape = "wide"                        # wide: one column per ticker; long: a row per ticker and date
    date = "Date"                         # the date column
    date_format = "%d/%m/%Y"              # strftime format of the dates (default: ISO)
    field = "close"                       # wide: what the cells hold
    ticker = "Symbol"                     # long: the ticker column
    announcement_date = "Filing Date"     # fundamentals: when the figure became public (optional)
    index = "Index"                       # constituents: the index column (or index_name = "SP500")
    [output.columns]                      # long: our name = their column
    close = "Price"
    [output.units]                        # multiply a field after reading, e.g. millions -> units
    market_cap = 1e6

Each ticker's rows become one logfile per output (constituents: one per list date), named and
written like every vendor's; rerunning the same import writes nothing new.
"""

from __future__ import annotations

import datetime as dt
import logging
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..datalog import SCHEMAS, LogName, write_log
from ..errors import BadInputError

log = logging.getLogger(__name__)
READERS = {"csv": pd.read_csv, "parquet": pd.read_parquet, "excel": pd.read_excel}


def load_mapping(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"mapping file {path} not found")
    try:
        mapping = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"mapping file {path}: not valid TOML ({exc})") from None
    source = mapping.get("source", "")
    if not isinstance(source, str) or not source.isalnum() or source != source.lower():
        raise BadInputError(
            f"mapping file {path}: 'source' must be a lowercase vendor name, e.g. \"datastream\""
        )
    outputs = mapping.get("output")
    if not outputs:
        raise BadInputError(f"mapping file {path}: no [[output]] section")
    for k, out in enumerate(outputs, start=1):
        where = f"mapping file {path}, output {k}"
        if out.get("data_type") not in SCHEMAS:
            raise BadInputError(f"{where}: data_type must be one of {', '.join(SCHEMAS)}")
        if out.get("shape", "long") not in ("long", "wide"):
            raise BadInputError(f"{where}: shape must be 'long' or 'wide'")
        if out.get("shape") == "wide" and not out.get("field"):
            raise BadInputError(f"{where}: a wide output needs 'field' (what the cells hold)")
    return mapping


def _read(path: Path, mapping: dict) -> pd.DataFrame:
    fmt = mapping.get("format") or {
        ".csv": "csv",
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
    try:
        return READERS[fmt](path, **mapping.get("read", {}))
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise BadInputError(f"input {path}: could not read it as {fmt} ({exc})") from None


def _column(frame: pd.DataFrame, name: str, where: str) -> pd.Series:
    if name not in frame.columns:
        raise BadInputError(f"{where}: no column {name!r} (found {list(frame.columns)[:12]})")
    return frame[name]


def _dates(values: pd.Series, fmt: str | None, where: str, column: str) -> pd.Series:
    parsed = (
        pd.to_datetime(values, format=fmt, errors="coerce")
        if fmt
        else pd.to_datetime(values, errors="coerce")
    )
    bad = parsed.isna() & values.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise BadInputError(
            f"{where}, row {i + 2}, column {column!r}: {values.iloc[i]!r} is not a date"
            + (f" in the format {fmt!r}" if fmt else "")
        )
    return parsed.dt.normalize()


def _numbers(values: pd.Series, where: str, column: str) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise BadInputError(
            f"{where}, row {i + 2}, column {column!r}: {values.iloc[i]!r} is not a number"
        )
    return out.astype(float)


def _long_frame(frame: pd.DataFrame, out: dict, where: str) -> pd.DataFrame:
    """Our long table (ticker, date[, announcement_date], fields) from one output spec."""
    dtype = out["data_type"]
    cols = dict(out.get("columns", {}))
    if out.get("shape") == "wide":
        date = _dates(
            _column(frame, out["date"], where), out.get("date_format"), where, out["date"]
        )
        tickers = [
            c for c in frame.columns if c != out["date"] and c not in out.get("skip_columns", [])
        ]
        data = frame[tickers].set_axis(date).rename_axis("date").reset_index()
        data = data.melt(id_vars="date", var_name="ticker", value_name=out["field"])
        data[out["field"]] = _numbers(data[out["field"]], where, out["field"])
        data = data.dropna(subset=[out["field"]])
    else:
        data = pd.DataFrame()
        if dtype != "metadata_array":
            key = "period_end" if dtype == "ticker_fundamental_data" else "date"
            data[key] = _dates(
                _column(frame, out["date"], where), out.get("date_format"), where, out["date"]
            )
        data["ticker"] = _column(frame, out["ticker"], where).astype(str).str.strip()
        if out.get("announcement_date"):
            data["announcement_date"] = _dates(
                _column(frame, out["announcement_date"], where),
                out.get("date_format"),
                where,
                out["announcement_date"],
            )
        if dtype == "constituent_list":
            data["index"] = out.get("index_name") or _column(frame, out["index"], where).astype(str)
        schema = SCHEMAS[dtype]
        for ours, theirs in cols.items():
            raw = _column(frame, theirs, where)
            text = dtype == "metadata_array" or (
                ours in schema["required"] and ours not in schema["numeric"]
            )
            data[ours] = raw.astype(str).str.strip() if text else _numbers(raw, where, theirs)
        if dtype == "corporate_actions" and "action" in data:
            data["action"] = data["action"].str.lower()  # "Split" and "DIVIDEND" read as ours
    for field, factor in out.get("units", {}).items():
        if field in data:
            data[field] = data[field] * float(factor)
    if dtype == "ticker_market_data":  # fields an export lacks stay empty (unknown)
        for field in SCHEMAS[dtype]["required"]:
            if field not in data:
                data[field] = np.nan
    if dtype == "ticker_fundamental_data" and "announcement_date" not in data:
        data["announcement_date"] = pd.NaT
    if dtype == "constituent_list" and "weight" not in data:
        data["weight"] = np.nan
    return data


def query(
    mapping_path: str | Path, input_path: str | Path, datalog_dir: str | Path
) -> dict[str, int]:
    """Import one file through its mapping into the datalog. Returns counts of logs written/already there."""
    mapping = load_mapping(mapping_path)
    input_path = Path(input_path)
    frame = _read(input_path, mapping)
    stamp = mapping.get("exported_at")
    moment = (
        dt.datetime.combine(dt.date.fromisoformat(str(stamp)), dt.time(), tzinfo=dt.UTC)
        if stamp
        else dt.datetime.fromtimestamp(input_path.stat().st_mtime, tz=dt.UTC)
    )
    # a distinct, deterministic offset per input file, so imports with one export date never clash
    base = (
        int(moment.timestamp() * 1_000_000)
        + (zlib.crc32(input_path.name.encode()) % 100_000) * 10_000
    )
    counts = {"written": 0, "already_logged": 0}
    k = 0
    for n, out in enumerate(mapping["output"], start=1):
        where = f"input {input_path.name} (mapping {Path(mapping_path).name}, output {n})"
        data = _long_frame(frame, out, where)
        dtype = out["data_type"]
        if dtype == "constituent_list":
            groups = [
                (f"{d:%Y%m%d}_{i}", g) for (d, i), g in data.groupby(["date", "index"], sort=True)
            ]
            keep = ["date", "index", "ticker", "weight"]
        elif dtype == "metadata_array":
            groups = [(mapping.get("label", "universe"), data)]
            keep = list(data.columns)
        else:
            groups = list(data.groupby("ticker", sort=True))
            keep = [c for c in data.columns if c != "ticker"]
        for label, group in groups:
            body = (
                group[keep].sort_values(keep[0], kind="stable")
                if dtype != "metadata_array"
                else group[keep]
            )
            _, written = write_log(
                datalog_dir, LogName(base + k, mapping["source"], dtype, str(label)), body
            )
            counts["written" if written else "already_logged"] += 1
            k += 1
    log.info(
        "file vendor %s: %s -> %d logs written, %d already there",
        mapping["source"],
        input_path.name,
        counts["written"],
        counts["already_logged"],
    )
    return counts
