"""Vendors (D2-D4, D9): each turns a query into datalog files, nothing more. `query` picks the one
parameters.py names: what 01_query_vendor.py and the Python API run. `simulated` (the seeded
market, the default), `files` (imports through declarative mappings), `sql` (SQLAlchemy
warehouses through the same mappings), `wrds` (CRSP and Compustat, default items in
`wrds_fields`), `bloomberg` (xbbg, default fields in `bloomberg_fields`, capital changes in
`bloomberg_actions`), `datastream` (LSEG's DatastreamPy, default datatypes in
`datastream_fields`, screens in `datastream_screens`). `querylog` holds what the querying vendors share (the resuming datalog
writer, chunks, month ends, retries); `vendor_checks` their settings' rules.

May import: `datalog`, `vocabulary`, `calendars` and `textio` of the data layer, `infra`, and the
doors `config` (lazily: config imports the field lists while it loads) and `errors`. Imported by:
`config` (the field lists only), the rest of the package through `query`, the realism report and
the tests."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ...errors import BadInputError
from ...infra.storage import remove_abandoned_temporaries

if TYPE_CHECKING:  # config imports vendors.bloomberg_fields: no import of config at load time
    from ...config import Parameters

log = logging.getLogger(__name__)


def query(
    params: Parameters,
    imports: Sequence[Sequence[str]] = (),
    *,
    force: bool = False,
    progress: bool = False,
) -> dict[str, int]:
    """Ask the vendor of params.source (or import the given [mapping, input] pairs, else
    params.file_imports) and log every answer into params.datalog_dir. Returns counts of logs
    written and already there."""
    from . import bloomberg, datastream, files, simulated, sql, wrds

    # a killed 01's half-written logs (01 holds the datalog's lock): never read as logs
    removed = remove_abandoned_temporaries(params.datalog_dir)
    if removed:
        log.info(
            "removed %d half-written files a killed 01 left in %s", removed, params.datalog_dir
        )
    if params.sql_mappings and not imports:
        return sql.query(params, force=force)
    imports = list(imports) or list(params.file_imports)
    if imports:
        total = {"written": 0, "already_logged": 0}
        for mapping, source_file in imports:
            counts = files.query(mapping, source_file, params.datalog_dir)
            log.info(
                "%s: %d logfiles written, %d already there",
                source_file,
                counts["written"],
                counts["already_logged"],
            )
            total = {k: total[k] + counts[k] for k in total}
        return total
    if params.source == bloomberg.SOURCE:
        counts = bloomberg.query(params, force=force, progress=progress)
        return {"written": counts["written"], "already_logged": counts["already_logged"]}
    for vendor in (wrds, datastream):
        if params.source == vendor.SOURCE:
            counts = vendor.query(params, force=force, progress=progress)
            return {"written": counts["written"], "already_logged": counts["already_logged"]}
    if params.source != simulated.SOURCE:
        raise BadInputError(
            f"source '{params.source}': give file imports (--import MAPPING INPUT or "
            "file_imports in parameters.py), SQL mappings (sql_url and sql_mappings), or use "
            "source = 'simulated' or 'bloomberg'"
        )
    settings = simulation(params)
    if settings.index_name != params.index:
        log.warning(
            "the simulated index is %s but parameters say index = %s",
            settings.index_name,
            params.index,
        )
    return simulated.query(settings, params.datalog_dir, progress=progress, clock=params.sim_clock)


def latest_prices(params: Parameters, tickers: Sequence[str], moment) -> pd.Series:
    """The vendor's latest price of each ticker at `moment` (UTC): what a live account's
    intraday heartbeat fills at. The simulated market's path inside its session, or
    Bloomberg's LAST_PRICE; other sources give none."""
    from . import bloomberg, simulated
    from .simulated import intraday, logs

    if params.source == simulated.SOURCE:
        prices = logs.cached_market(simulation(params)).prices
        day = pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).normalize()
        rows = prices[(prices["date"] == day) & prices["ticker"].isin(list(tickers))]
        return intraday.prices(rows, params.seed, params.exchange_calendar, pd.Timestamp(moment))
    if params.source == bloomberg.SOURCE:
        return bloomberg.latest_prices(params, list(tickers))
    raise BadInputError(
        f"source '{params.source}' gives no latest prices: an intraday heartbeat needs the "
        "simulated market or Bloomberg; use live_heartbeat = '1d'"
    )


def simulation(params: Parameters):
    """The simulated market parameters.py describes."""
    from . import simulated

    return simulated.SimulationSettings(
        params.sim_n_tickers, params.sim_index_size, params.sim_start, params.sim_end,
        params.seed, params.exchange_calendar,
    )  # fmt: skip
