"""Logfile names (D1): `<timestamp>__<source>__<data_type>__<label>.csv`, the label's
reversible encoding, a shortened stand-in for labels too long for a file system, and the
listing of a datalog folder in time order."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import urllib.parse
from collections.abc import Container
from pathlib import Path

from ...errors import BadInputError
from ..vocabulary import DATA_TYPES, LOG_TYPES

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


def list_logs(
    datalog_dir: str | Path, bad: list | None = None, known: Container[str] = ()
) -> list[tuple[LogName, Path]]:
    """All logfiles in time order (hidden temp files are not logs), but those named in `known`
    (a dataset version's logs, read before: an incremental build need not parse their names).

    A file whose name does not parse raises BadInputError, unless a `bad` list is given: then
    (path, error) is appended to it and the file is passed over.
    """
    root = Path(datalog_dir)
    if not root.is_dir():
        return []
    out = []
    with os.scandir(root) as entries:  # (the kind of each entry without a stat per file)
        for entry in entries:
            if entry.name.startswith(".") or entry.name in known or not entry.is_file():
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
