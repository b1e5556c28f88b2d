"""The datalog (D1): immutable vendor responses, one CSV per query, named so that names sort by time.

    datalog/<timestamp>__<source>__<data_type>__<label>.csv

timestamp: UTC epoch microseconds, 16 digits. source: lowercase vendor name. data_type: one of
DATA_TYPES. label: what was asked, percent-encoded so that '/', '\\', '__' and leading/trailing '_'
can never appear and the original is recoverable with `decode_label`.

Logfiles are written once (temp file + atomic link) and never edited or deleted by the pipeline.

The pieces: `names` (names, labels, listing), `write` (exact number text, write-once), `read`
(fast and careful parsing), `checks` (the content checks 01 and 02 share). Callers import from
here.
"""

from ..vocabulary import CORPORATE_ACTIONS, DATA_TYPES, LOG_TYPES, LogType
from .checks import check_frame, comparable, keys_increase
from .names import (
    MAX_NAME_BYTES,
    LogName,
    decode_label,
    encode_label,
    list_logs,
    parse_name,
    short_label,
)
from .read import parse_log, parse_many, read_log
from .write import (
    format_floats,
    frame_to_csv_bytes,
    quote,
    render_log,
    render_logs,
    write_log,
    write_log_bytes,
    write_logs_bytes,
)

__all__ = [
    "CORPORATE_ACTIONS",
    "DATA_TYPES",
    "LOG_TYPES",
    "MAX_NAME_BYTES",
    "LogName",
    "LogType",
    "check_frame",
    "comparable",
    "decode_label",
    "encode_label",
    "format_floats",
    "frame_to_csv_bytes",
    "keys_increase",
    "list_logs",
    "parse_log",
    "parse_many",
    "parse_name",
    "quote",
    "read_log",
    "render_log",
    "render_logs",
    "short_label",
    "write_log",
    "write_log_bytes",
    "write_logs_bytes",
]
