"""Build versioned feather datasets from the datalog (D5), and read them back.

    datasets/CURRENT              name of the version in use (replaced atomically)
    datasets/v000003/             one complete build: <table>.feather + manifest.json, the market
                                  table as market/<year>.feather (format 2), the years a build
                                  did not change shared with the previous version

A build reads only the logs that the current version's manifest does not list, merges them into
the previous version's tables and resolves conflicts so that the latest query wins (by log
timestamp). The new version is written to a hidden temporary folder, renamed into place, and only
then does CURRENT switch to it; a crash at any moment leaves the previous version in use.
Rebuilding from an empty datasets/ gives tables identical (same SHA-256) to incremental builds.

The pieces: `versions` (which version is current, its manifest and tables), `builder` (a build from
the new logs), `resolve` (latest query wins), `fold` (the incremental fold into the previous
version's tables), `year_parts` (a table cut by year, new rows folded into their years only). Callers import from here.
"""

from ..vocabulary import TABLES
from .builder import BuildResult, build
from .versions import (
    Columns,
    current_version,
    load_table,
    load_tables,
    read_manifest,
    table_files,
)

__all__ = [
    "TABLES",
    "BuildResult",
    "Columns",
    "build",
    "current_version",
    "load_table",
    "load_tables",
    "read_manifest",
    "table_files",
]
