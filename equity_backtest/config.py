"""Load the user's parameters.py, apply command-line overrides, and validate into one frozen object.

parameters.py is plain Python so values may be computed; every lowercase top-level name must be a
known parameter (a typo is an error, not a silently ignored setting). Helper names start with `_`.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import difflib
import importlib.util
import math
import types
from pathlib import Path
from typing import Any

from .data.frequency import FREQUENCIES
from .data.vendors import bloomberg_fields, datastream_fields, vendor_checks, wrds_fields
from .data.vocabulary import MARKET_FIELDS
from .errors import BadInputError

REBALANCE_NAMES = ("daily", "weekly", "monthly", "quarterly", "yearly", "never")
FILL_TIMINGS = ("open", "close")
UNFILLED_POLICIES = ("cancel", "carry")


@dataclasses.dataclass(frozen=True)
class Parameters:
    """Every backtest setting; parameters.py documents each one for users."""

    # data
    source: str = "simulated"
    index: str = "TOP100"
    datalog_dir: str = "datalog"
    datasets_dir: str = "datasets"
    results_dir: str = "results"
    dataset_version: str | None = None
    # local mirrors of stores given as URLs (O3)
    store_cache_dir: str = ".store_cache"
    # file vendor (D4): [mapping, input] pairs that 01 imports
    file_imports: list = dataclasses.field(default_factory=list)
    # SQL vendor: a SQLAlchemy URL (${NAME} from the environment) and the mappings it runs
    sql_url: str = ""
    sql_mappings: list = dataclasses.field(default_factory=list)
    # what vendors are asked for (D3): first and last date (None = today)
    query_start: dt.date = dt.date(2005, 1, 1)
    query_end: dt.date | None = None
    # a (data type, label) logged less than this long ago is current: a rerun does not ask again
    requery_after_hours: float = 24.0
    # Bloomberg (D3)
    bbg_indexes: list = dataclasses.field(default_factory=list)
    bbg_security_suffix: str = " Equity"
    bbg_market_fields: dict = dataclasses.field(
        default_factory=lambda: dict(bloomberg_fields.MARKET_FIELDS)
    )
    bbg_fundamental_fields: dict = dataclasses.field(
        default_factory=lambda: dict(bloomberg_fields.FUNDAMENTAL_FIELDS)
    )
    bbg_announcement_field: str = "ANNOUNCEMENT_DT"
    bbg_fundamental_periodicity: str = "Q"
    # units at the boundary: each fundamental is multiplied by its scale (by our metric name,
    # "default" for the rest): Bloomberg gives statement items and share counts in millions
    bbg_fundamental_scale: dict = dataclasses.field(default_factory=lambda: {"default": 1e6})
    bbg_metadata_fields: dict = dataclasses.field(
        default_factory=lambda: dict(bloomberg_fields.METADATA_FIELDS)
    )
    bbg_dividend_field: str = "DVD_HIST_ALL"
    bbg_currency: str | None = None
    bbg_chunk_tickers: int = 50
    bbg_chunk_fields: int = 10
    bbg_retries: int = 4
    bbg_retry_wait_s: float = 2.0
    # Datastream (D14): list mnemonics without the month ("LS&PCOMP"; [] = [index])
    ds_lists: list = dataclasses.field(default_factory=list)
    ds_config: str = ""  # a DatastreamPy config file (proxies, certificate); "" = none
    ds_market_fields: dict = dataclasses.field(
        default_factory=lambda: dict(datastream_fields.MARKET_DATATYPES)
    )
    ds_fundamental_fields: dict = dataclasses.field(
        default_factory=lambda: dict(datastream_fields.FUNDAMENTAL_DATATYPES)
    )
    ds_fundamental_frequency: str = "Q"
    # the market log's bars: "daily", or "monthly" (month-end bars made from the screened days)
    ds_frequency: str = "daily"
    # when a period's figures become public: the date this datatype gives (public code uses
    # "WC05905A"; unconfirmed, so off by default), else this long after the period's end
    ds_report_date_field: str = ""
    ds_report_lag_days: int = 90
    ds_metadata_fields: dict = dataclasses.field(
        default_factory=lambda: dict(datastream_fields.METADATA_DATATYPES)
    )
    # the screens (datastream_screens): the shortest run of one price with no volume at a
    # series' end taken as padding after a death, the tolerance of a split ratio, the price
    # below which returns come from rounded prices, and RI's tolerated difference from ours
    ds_padding_days: int = 20
    ds_split_tolerance: float = 0.01
    ds_low_price: float = 1.0
    ds_ri_tolerance: float = 0.005
    ds_chunk_tickers: int = 10
    ds_chunk_fields: int = 10
    ds_retries: int = 4
    ds_retry_wait_s: float = 2.0
    # WRDS: CRSP and Compustat (D3)
    wrds_username: str = ""  # "" = WRDS_USERNAME from the environment or .env
    wrds_host: str = "wrds-pgdata.wharton.upenn.edu"
    wrds_port: int = 9737
    wrds_dbname: str = "wrds"
    wrds_sslmode: str = "require"
    wrds_format: str = "ciz"
    wrds_frequency: str = "daily"
    wrds_sector: str = "gics"
    # fundq: Compustat's standard quarterly file (restated figures only); snapshot: Compustat
    # Snapshot's point-in-time history (comp_snapshot.wrds_csq_pit), a subscription of its own
    wrds_fundamentals: str = "fundq"
    wrds_fundamental_fields: dict = dataclasses.field(
        default_factory=lambda: dict(wrds_fields.FUNDAMENTAL_FIELDS)
    )
    wrds_year_to_date: list = dataclasses.field(
        default_factory=lambda: list(wrds_fields.YEAR_TO_DATE)
    )
    wrds_fundamental_scale: float = 1e6
    wrds_chunk_permnos: int = 200
    wrds_chunk_years: int = 5
    # simulated market (D2)
    seed: int = 42
    sim_n_tickers: int = 300
    sim_index_size: int = 100
    sim_start: dt.date = dt.date(2005, 1, 1)
    sim_end: dt.date = dt.date(2024, 12, 31)
    # the simulated market's "today" (None: its whole history): 01 logs only what is known at
    # this day's close and not logged before, so a live account can be run day by day (E12)
    sim_clock: dt.date | None = None
    # the exchange whose sessions the simulated market trades and the quality report checks dates
    # against (an exchange_calendars name; a source's metadata "exchange" column overrides it)
    exchange_calendar: str = "XNYS"
    # keep each built panel (dense arrays of a dataset version) in <datasets_dir>/.panel_cache so
    # that later runs on the same data load it in milliseconds (disk: about 10 x days x tickers
    # x 8 bytes per version and settings; the two newest versions are kept)
    panel_cache: bool = True
    # point-in-time fundamentals (D6): days after period end when a vendor gives no announcement date
    fundamental_lag_days: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"default": 45}
    )
    # days added to the public date of fundamentals a vendor gives only as restated (WRDS's
    # comp.fundq): a rule then sees each figure later, trading look-ahead for staleness
    restated_lag_days: int = 0
    # backtest window and schedule (E1)
    start: dt.date = dt.date(2007, 1, 1)
    end: dt.date = dt.date(2024, 12, 31)
    heartbeat: str = "daily"
    rebalance: str | int = "monthly"
    lookback_days: int = 260
    # live mode (E12, 03_trade.py --live): the account's folder is <live_dir>/<live_account>
    # ("" = the algorithm file's name); the broker its orders go to
    live_dir: str = "live"
    live_account: str = ""
    live_broker: str = "paper"
    # the file broker's fill report: our field -> the report's column (ticker, shares, price,
    # commission; side and key optional), for columns named otherwise
    live_fill_columns: dict = dataclasses.field(default_factory=dict)
    live_alpaca_url: str = ""  # "" = Alpaca's paper-trading endpoint
    # 03 --live --loop: a heartbeat after each session's close, this long after it
    live_heartbeat: str = "1d"
    live_delay_minutes: float = 30.0
    # a killed run resumes from its last checkpoint, written every this many heartbeats (0 = off)
    checkpoint_days: int = 250
    checkpoint_after_s: float = 30.0  # runs that finish sooner never write a checkpoint
    # portfolio and orders (E4, E8)
    starting_cash: float = 1_000_000.0
    starting_holdings: str | None = None
    cash_buffer: float = 0.01
    no_trade_band: float = 0.002
    fractional_shares: bool = False
    min_trade_value: float = 0.0
    max_leverage: float = 1.0
    allow_short: bool = False
    # fills and costs (E3, E5)
    fill_timing: str = "open"
    volume_cap: float = 0.10
    unfilled: str = "cancel"
    spread_bps: float = 4.0
    slippage_bps: float = 2.0
    impact_coef: float = 0.1
    impact_vol_days: int = 20
    commission_rate: float = 0.0005
    commission_min: float = 1.0
    commission_per_share: float = 0.0
    # cash and financing (E6)
    cash_interest: bool = False
    borrow_spread: float = 0.01
    short_fee_rate: float = 0.005
    # bars: daily, weekly, monthly or quarterly; "auto" infers it from the data's dates
    bar_frequency: str = "auto"
    # evaluation (V1): "index" (cap-weighted members) or a ticker in the data (a supplied series)
    benchmark: str = "index"
    risk_free_rate: float = 0.02
    # the Quantopian contest's rules for market-neutral strategies (V6): checked only when asked
    contest_checks: bool = False
    # the weighting rule
    algorithm: str = "algorithm.py"
    # LLM recommendations (L1-L7; strategies/llm.py and python -m equity_backtest.llm)
    llm_backend: str = "transformers"
    llm_model: str = ""
    llm_gguf_file: str | None = None
    llm_dtype: str = "auto"
    llm_quantisation: str | None = None
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_timeout_s: float = 120.0  # one request to an OpenAI-compatible server, reply included
    llm_retries: int = 2  # of a request the server refused or dropped (a timeout is not retried)
    llm_store_timeout_s: float = 30.0  # pulling or uploading decision shards (llm_sync_to)
    llm_max_model_len: int | None = None  # vLLM's context length (None: the model's own)
    llm_concurrency: int = 8
    llm_tensor_parallel: int = 1  # GPUs one model is split across (vLLM backend)
    llm_batch_size: int = 8
    llm_max_new_tokens: int = 512
    llm_temperature: float = 0.0
    llm_repetition_penalty: float = 1.0
    llm_constrained: bool = True
    llm_reasoning: bool = False
    llm_prompt: str = "v2"
    llm_periods: int = 4
    llm_statement_items: dict = dataclasses.field(
        default_factory=lambda: {
            "income_statement": ["revenue", "gross_profit", "ebit", "net_income"],
            "balance_sheet": [
                "total_assets", "current_assets", "cash", "net_fixed_assets", "total_debt",
                "current_liabilities", "total_equity", "shares_outstanding",
            ],
            "cash_flow": ["operating_cash_flow", "capex"],
        }
    )  # fmt: skip
    llm_decisions_dir: str = "decisions"
    llm_sync_to: str | None = None
    llm_on_failure: str = "hold"
    llm_min_confidence: float = 50.0
    llm_cutoffs: dict = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> Parameters:
        """A validated copy with some fields changed (used for CLI overrides and trials)."""
        return validate(dataclasses.replace(self, **changes))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly values (dates as ISO strings), for the run archive."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, dt.date) else v
        return out


FIELDS = {f.name: f for f in dataclasses.fields(Parameters)}
DATE_FIELDS = {"sim_start", "sim_end", "sim_clock", "start", "end", "query_start", "query_end"}
OPTIONAL_DATES = {"query_end", "sim_clock"}  # None is a value of theirs


def parse_date(value: Any, field: str) -> dt.date:
    """Accept a date, a datetime or an ISO string ('2012-10-01'); anything else is named as bad."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise BadInputError(f"parameter '{field}': {value!r} is not a date; write it as 'YYYY-MM-DD'")


def unknown(name: str, where: str) -> BadInputError:
    """The message for a setting that does not exist, with the nearest one that does."""
    hint = difflib.get_close_matches(name, FIELDS, n=1)
    return BadInputError(
        f"{where}: unknown parameter '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
    )


def coerce(name: str, value: Any) -> Any:
    """A command-line string (or a parameters.py value) converted to the field's type."""
    if name not in FIELDS:
        raise unknown(name, "settings")
    if name in DATE_FIELDS:
        return None if value is None and name in OPTIONAL_DATES else parse_date(value, name)
    default = FIELDS[name].default
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
        if isinstance(value, bool):
            return value
        raise BadInputError(f"parameter '{name}': {value!r} is not true/false")
    if isinstance(default, float) and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise BadInputError(f"parameter '{name}': {value!r} is not a number") from None
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            number = float(value) if isinstance(value, str | float) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (TypeError, ValueError, OverflowError):
            raise BadInputError(f"parameter '{name}': {value!r} is not a whole number") from None
    if name == "rebalance" and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    kind = str(FIELDS[name].type)
    if isinstance(value, str) and kind.startswith(("dict", "list", "tuple")):
        # --set llm_statement_items={"income_statement": ["revenue"]}: a Python literal, read
        # as data (ast.literal_eval runs nothing)
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise BadInputError(
                f"parameter '{name}': {value!r} is not a Python literal; give it as in "
                f"parameters.py, e.g. {name}={_EXAMPLES.get(name, '{...}')}"
            ) from None
        return parsed
    if isinstance(value, str) and kind in ("int | None", "float | None"):
        if value.strip().lower() in ("", "none", "null"):
            return None
        try:
            number = float(value)
            if kind.startswith("int") and not number.is_integer():
                raise ValueError
            return int(number) if kind.startswith("int") else number
        except ValueError:
            raise BadInputError(f"parameter '{name}': {value!r} is not a number or None") from None
    return value


_EXAMPLES = {
    "llm_statement_items": '{"income_statement": ["revenue", "net_income"], "balance_sheet": '
    '["total_assets"], "cash_flow": ["operating_cash_flow"]}',
    "llm_cutoffs": '{"SmolLM2-135M-Instruct": "2024-06-30"}',
}


def validate(p: Parameters) -> Parameters:
    """Check ranges and choices; return the same object so calls can be chained."""

    def bad(field: str, why: str) -> BadInputError:
        value = getattr(p, field)
        shown = value.isoformat() if isinstance(value, dt.date) else repr(value)
        return BadInputError(f"parameter '{field}' = {shown}: {why}")

    for f in dataclasses.fields(p):  # nan and inf pass every comparison below: refuse them first
        value = getattr(p, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise bad(f.name, "must be a finite number")

    if p.start > p.end:
        raise bad("start", f"is after end ({p.end}); the backtest runs from start to end inclusive")
    if p.sim_start >= p.sim_end:
        raise bad("sim_start", "must be before sim_end")
    if p.heartbeat != "daily":
        raise bad("heartbeat", "only 'daily' heartbeats are supported in this version")
    if isinstance(p.rebalance, int):
        if p.rebalance < 1:
            raise bad("rebalance", "every-N-heartbeats must be a positive whole number")
    elif p.rebalance not in REBALANCE_NAMES:
        raise bad("rebalance", f"choose one of {', '.join(REBALANCE_NAMES)} or a whole number N")
    pairs = p.file_imports
    if not isinstance(pairs, list | tuple) or not all(
        isinstance(x, list | tuple) and len(x) == 2 and all(isinstance(y, str) for y in x)
        for x in pairs
    ):
        raise bad(
            "file_imports",
            'must be a list of [mapping, input] pairs, e.g. [["mappings/close.toml", '
            '"exports/close.csv"]]; on the command line use 01 --import MAPPING INPUT',
        )
    if not isinstance(p.sql_mappings, list | tuple) or not all(
        isinstance(x, str) for x in p.sql_mappings
    ):
        raise bad("sql_mappings", 'must be a list of mapping files, e.g. ["mappings/prices.toml"]')
    if not isinstance(p.sql_url, str):
        raise bad("sql_url", "must be a SQLAlchemy URL string")
    if p.bar_frequency not in FREQUENCIES:
        raise bad("bar_frequency", f"choose one of {', '.join(FREQUENCIES)}")
    if not isinstance(p.benchmark, str) or not p.benchmark.strip():
        raise bad("benchmark", "write 'index' or the ticker of a benchmark series in the data")
    if p.fill_timing not in FILL_TIMINGS:
        raise bad("fill_timing", f"choose one of {FILL_TIMINGS}")
    if p.unfilled not in UNFILLED_POLICIES:
        raise bad("unfilled", f"choose one of {UNFILLED_POLICIES}")
    for name in ("starting_cash",):
        if not getattr(p, name) > 0:
            raise bad(name, "must be positive")
    for name in ("cash_buffer", "no_trade_band"):
        if not 0 <= getattr(p, name) < 1:
            raise bad(name, "must be a fraction in [0, 1)")
    if not 0 < p.volume_cap <= 1:
        raise bad("volume_cap", "must be a fraction of the day's volume in (0, 1]")
    if p.impact_vol_days < 2:
        raise bad("impact_vol_days", "needs at least 2 days to measure volatility")
    for name in (
        "spread_bps",
        "impact_coef",
        "borrow_spread",
        "short_fee_rate",
        "slippage_bps",
        "commission_rate",
        "commission_min",
        "commission_per_share",
        "min_trade_value",
        "lookback_days",
        "checkpoint_days",
        "checkpoint_after_s",
    ):
        if getattr(p, name) < 0:
            raise bad(name, "must not be negative")
    if p.max_leverage < 1:
        raise bad("max_leverage", "must be at least 1 (1 = no leverage)")
    if p.sim_n_tickers < 10 or not 1 <= p.sim_index_size <= p.sim_n_tickers:
        raise bad(
            "sim_index_size", "needs 1 <= sim_index_size <= sim_n_tickers and at least 10 tickers"
        )
    if not isinstance(p.exchange_calendar, str) or not p.exchange_calendar:
        raise bad("exchange_calendar", "must name an exchange calendar, e.g. 'XNYS'")
    if not isinstance(p.fundamental_lag_days, dict) or not all(
        isinstance(v, int) and v >= 0 for v in p.fundamental_lag_days.values()
    ):
        raise bad(
            "fundamental_lag_days", "must map metric names (and 'default') to whole days >= 0"
        )
    if not isinstance(p.bbg_fundamental_scale, dict) or not all(
        isinstance(v, int | float) and v > 0 for v in p.bbg_fundamental_scale.values()
    ):
        raise bad("bbg_fundamental_scale", "must map metric names (and 'default') to numbers > 0")
    if not isinstance(p.restated_lag_days, int) or p.restated_lag_days < 0:
        raise bad("restated_lag_days", "must be a whole number of days >= 0 (0: no lag)")
    for name in ("bbg_chunk_tickers", "bbg_chunk_fields"):
        if getattr(p, name) < 1:
            raise bad(name, "must be at least 1")
    if p.bbg_retries < 0 or p.bbg_retry_wait_s < 0 or p.requery_after_hours < 0:
        raise bad("bbg_retries", "retries, their wait and requery_after_hours must not be negative")
    for name in ("bbg_market_fields", "bbg_fundamental_fields", "bbg_metadata_fields"):
        if not isinstance(getattr(p, name), dict):
            raise bad(name, "must map our column names to Bloomberg field mnemonics")
    missing = set(MARKET_FIELDS) - set(p.bbg_market_fields)
    if missing:
        raise bad("bbg_market_fields", f"lacks {sorted(missing)} (every market log has them)")
    vendor_checks.validate(p, bad)
    if p.query_end is not None and p.query_start > p.query_end:
        raise bad("query_start", "is after query_end")
    if "://" in str(p.llm_decisions_dir):
        raise bad(
            "llm_decisions_dir",
            "must be a local folder (the log is written line by line with fsync); to keep the "
            "decisions in a store, set llm_sync_to = 's3://...': shards are copied there, and a "
            "run on another machine pulls them back",
        )
    items = p.llm_statement_items
    if (
        not isinstance(items, dict)
        or set(items) != {"income_statement", "balance_sheet", "cash_flow"}
        or not all(
            isinstance(v, list | tuple) and all(isinstance(m, str) and m for m in v)
            for v in items.values()
        )
    ):
        raise bad(
            "llm_statement_items",
            "must map income_statement, balance_sheet and cash_flow to lists of metric names "
            'in the dataset, e.g. {"income_statement": ["revenue", "ebit"], ...}',
        )
    if p.llm_on_failure not in ("hold", "missing"):
        raise bad("llm_on_failure", "choose 'hold' (a failed reply counts as HOLD) or 'missing'")
    if min(p.llm_batch_size, p.llm_concurrency, p.llm_max_new_tokens, p.llm_tensor_parallel) < 1:
        raise bad("llm_batch_size", "batch size, concurrency and max new tokens must be >= 1")
    for name in ("llm_timeout_s", "llm_store_timeout_s"):
        if not 0 < getattr(p, name) <= 3600:
            raise bad(name, "give seconds, more than 0 and at most 3600")
    if not 0 <= p.llm_retries <= 10:
        raise bad("llm_retries", "give a whole number from 0 to 10")
    if p.llm_max_model_len is not None and p.llm_max_model_len < p.llm_max_new_tokens:
        raise bad("llm_max_model_len", "must hold the prompt and llm_max_new_tokens; give more")
    if not p.source or not p.source.isalnum() or p.source != p.source.lower():
        raise bad("source", "must be a lowercase vendor name such as 'simulated'")
    return p


def load_parameters(path: str | Path, overrides: dict[str, Any] | None = None) -> Parameters:
    """Execute parameters.py, keep its public names, apply overrides, and validate."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"parameters file {path} not found; pass --parameters PATH")
    spec = importlib.util.spec_from_file_location("_user_parameters", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file: report it, never a bare traceback
        raise BadInputError(f"{path}: could not run it ({type(exc).__name__}: {exc})") from exc
    values: dict[str, Any] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType) or callable(value):
            continue
        if name not in FIELDS:
            error = unknown(name, str(path))
            raise BadInputError(f"{error}; prefix helper variables with '_'")
        values[name] = value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for name in list(values):
        if name not in FIELDS:
            raise unknown(name, "--set")
        values[name] = coerce(name, values[name])
    return validate(Parameters(**values))


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """Turn ['rebalance=quarterly', 'seed=7'] from --set into a dict (strings are coerced later)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--set {item!r}: write it as name=value")
        out[key.strip()] = value.strip()
    return out
