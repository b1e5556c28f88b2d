"""Reading users' text files (exports, holdings, logfiles) in the encoding they really have.

Exports arrive as UTF-8, UTF-8 with a byte-order mark (Excel's "CSV UTF-8"), UTF-16 (Excel's
"Unicode text") or a legacy single-byte code page. A BOM names its encoding and is honoured;
without one the bytes must be valid UTF-8, or the file is refused with a message that says how to
name its encoding. Binary files (NUL bytes in UTF-8 text) are refused the same way: never a
traceback, never text silently mangled by a wrong guess.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(data: bytes, where: str, encoding: str | None = None) -> str:
    """The text of a file's bytes: the given encoding, else the BOM's, else strict UTF-8."""
    if encoding is None:
        encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except LookupError:
        raise BadInputError(f"{where}: unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        hint = (
            "; if it is a Latin-1 or Windows export, name its encoding (e.g. encoding = "
            '"cp1252" under [read] in the mapping), or save it as UTF-8'
            if encoding.lower().replace("-", "") in ("utf8", "utf8sig")
            else ""
        )
        raise BadInputError(
            f"{where}: not valid {encoding} text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}){hint}"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        raise BadInputError(
            f"{where}: holds NUL bytes, so it is a binary file (or text in an encoding with no "
            "byte-order mark); export it as CSV text"
        )
    return text


def read_text(path: str | Path, where: str, encoding: str | None = None) -> str:
    """A file's text, decoded as `decode` does; a missing file is a clear error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"{where}: file not found") from None
    except OSError as exc:
        raise BadInputError(f"{where}: cannot read it ({exc.strerror})") from None
    return decode(data, where, encoding)


def read_csv_text(text: str, where: str, **kwargs) -> pd.DataFrame:
    """pandas.read_csv over decoded text, with CSV damage reported as a BadInputError."""
    try:
        return pd.read_csv(io.StringIO(text), **kwargs)
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{where}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise BadInputError(f"{where}: not valid CSV ({str(exc).strip()})") from None


def parse_floats(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers written as text -> (float64 values, mask of cells that are not numbers).

    Conversion is correctly rounded (numpy's, over the C library's strtod), so the shortest
    repr of a float reads back bit for bit; pandas' fast parsers can be one unit in the last
    place off. Empty cells and NaN are missing (NaN), not bad. Numbers already parsed pass as
    they are."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(values), dtype=bool)
    cells = values.to_numpy(dtype=object)
    missing = pd.isna(cells)
    if missing.any():
        cells = cells.copy()
        cells[missing] = ""
    text = cells.astype(str)  # numpy skips surrounding blanks when it converts
    out = np.full(len(text), np.nan)
    filled = text != ""
    try:
        out[filled] = text[filled].astype(np.float64)
        return out, np.zeros(len(text), dtype=bool)
    except ValueError:
        pass
    bad = np.zeros(len(text), dtype=bool)
    for i in np.flatnonzero(filled):
        try:
            out[i] = float(text[i])
        except ValueError:
            bad[i] = True
    return out, bad
