"""Backtest parameters: plain Python, so values may be computed.

Flags of the numbered scripts override them (--start, --end, --algorithm, --set name=value).
Names starting with '_' are helpers; any other unknown name is an error, so a typo never passes
silently.
"""

import datetime as _dt

# --- Data ---------------------------------------------------------------------------------------
source = "simulated"  # vendor whose data the backtest uses: simulated (built in, offline)
sim_index_size = 100  # simulated index: the top N tickers by market cap, listed monthly
index = f"TOP{sim_index_size}"  # index whose point-in-time members form the universe
datalog_dir = "datalog"  # raw, immutable vendor logfiles (01 writes, 02 reads)
datasets_dir = "datasets"  # versioned feather datasets (02 writes, 03 reads)
results_dir = "results"  # one archive folder per run (03 writes, 04 adds the tear sheet)
dataset_version = None  # None: the version datasets/CURRENT names; or e.g. "v000003"
# The three stores may also be fsspec URLs, e.g. "s3://bucket/research/datalog" (pip install
# 'equity_backtest[s3]'; credentials from the environment or .env). Stages work on local mirrors:
store_cache_dir = ".store_cache"
# File imports for 01 (any source other than "simulated"): [mapping, input] pairs, e.g.
# [["mappings/datastream_close.toml", "samples/datastream_close.csv"]]
file_imports = []
# SQL vendor (pip install -e ".[sql]" and the database's driver): a SQLAlchemy URL, with
# ${NAME} taken from the environment or .env, and mapping files that each hold a query
sql_url = ""  # e.g. "postgresql://analyst:${PGPASSWORD}@warehouse:5432/research"
sql_mappings = []  # e.g. ["mappings/model_data.toml"]

# --- What vendors are asked for (01) -----------------------------------------------------------
query_start = _dt.date(
    2005, 1, 1
)  # first date asked for (history before the backtest, for lookbacks)
query_end = None  # last date asked for; None = today
requery_after_hours = 24.0  # a label logged less than this long ago is current: a rerun skips it

# --- Bloomberg (01 when source = "bloomberg"; pip install 'equity_backtest[bloomberg]') ---------
bbg_indexes = []  # index tickers, e.g. ["SPX Index", "NDX Index"]; [] = [index]
bbg_security_suffix = " Equity"  # index members ("AAPL UW") are asked for as "AAPL UW Equity"
# What is asked: bbg_market_fields, bbg_fundamental_fields and bbg_metadata_fields map our
# column names to Bloomberg mnemonics; the defaults live in equity_backtest/vendors/bloomberg_fields.py.
# Set any of them here to ask for other fields, e.g.
# bbg_fundamental_fields = {"revenue": "SALES_REV_TURN", "ebit": "EBIT"}
bbg_announcement_field = "ANNOUNCEMENT_DT"  # the date each period's figures became public
bbg_fundamental_periodicity = "Q"  # Q quarterly, S semi-annual, Y yearly (bdh Per=)
# Bloomberg gives statement items and share counts in millions: each metric is multiplied by its
# scale here (by our metric name; e.g. {"default": 1e6, "eps": 1} for a per-share field you add)
bbg_fundamental_scale = {"default": 1e6}
bbg_dividend_field = "DVD_HIST_ALL"  # dividends and splits (bds); "" = none
bbg_currency = None  # e.g. "USD" to convert prices and fundamentals; None = local currency
bbg_chunk_tickers = 50  # securities per request
bbg_chunk_fields = 10  # fields per request
bbg_retries = 4  # retries of a failed request, waiting bbg_retry_wait_s x 2^attempt seconds
bbg_retry_wait_s = 2.0  # (the SQL and WRDS vendors retry with these two as well)

# --- WRDS: CRSP + Compustat (01 when source = "wrds"; pip install -e ".[wrds]") -----------------
# The user is WRDS_USERNAME (environment or .env); the password comes from ~/.pgpass or PGPASSWORD.
# Tickers are CRSP PERMNOs ("14593"); the exchange ticker is metadata (symbol, symbol_history).
wrds_username = ""  # "" = WRDS_USERNAME
wrds_host = "wrds-pgdata.wharton.upenn.edu"
wrds_port = 9737
wrds_dbname = "wrds"
wrds_sslmode = "require"
wrds_format = "ciz"  # ciz (crsp.dsf_v2, msf_v2, stkdistributions...) or legacy (crsp.dsf, msf...)
wrds_frequency = "daily"  # daily (dsf) or monthly (msf) stock file
wrds_sector = "gics"  # gics (comp.company.gsector via the CCM link) or sic (SIC division)
wrds_fundamentals = (
    "fundq"  # fundq (restated figures only) or snapshot (Compustat Snapshot, point in time)
)
# Compustat items: our metric -> SQL over comp.fundq; defaults in vendors/wrds_fields.py, e.g.
# wrds_fundamental_fields = {"revenue": "saleq", "ebit": "oiadpq"}   ({} = no fundamentals)
wrds_year_to_date = ["operating_cash_flow", "capex"]  # Compustat year-to-date items -> per quarter
wrds_fundamental_scale = 1e6  # Compustat reports $ millions and millions of shares
wrds_chunk_permnos = 200  # PERMNOs per query
wrds_chunk_years = 5  # years of the stock file per query

# --- Simulated market (used by 01 when source = "simulated") ------------------------------------
seed = 42  # same seed and settings -> byte-identical datalog, whatever today's date
sim_n_tickers = 300  # tickers that ever trade (IPOs and delistings included)
sim_start = _dt.date(2005, 1, 1)  # first simulated day (history before the backtest, for lookbacks)
sim_end = _dt.date(2024, 12, 31)  # last simulated day
# The exchange whose sessions (holidays, special closures, half days) the simulated market trades,
# and the calendar the data-quality report checks daily dates against (an exchange_calendars
# name; a source's metadata "exchange" column, where it names a calendar, wins for that source)
exchange_calendar = "XNYS"
# Keep each built panel (a dataset version's dense arrays) in datasets/.panel_cache, so that later
# backtests on the same data start in milliseconds; disk: about 10 x days x tickers x 8 bytes per
# version and settings (280 MB for 700 tickers over 20 years), the two newest versions kept
panel_cache = True

# --- Point-in-time fundamentals -----------------------------------------------------------------
# A fundamental becomes visible on its announcement date; where a vendor gives none, on period
# end plus this many calendar days (per metric, with a default).
fundamental_lag_days = {"default": 45}
# Fundamentals a vendor gives only as restated (WRDS's comp.fundq keeps each quarter's latest
# values, dated here at its first report): this many more days before a rule sees them. 0 = none.
restated_lag_days = 0

# --- Backtest window and schedule ---------------------------------------------------------------
start = "2007-01-01"  # first heartbeat (the first trading day on or after it)
end = "2024-12-31"  # last heartbeat, inclusive
heartbeat = "daily"  # the loop marks to market and fills orders every trading day
# When compute_weights runs: daily, weekly, monthly, quarterly, yearly, never, or every N days
rebalance = "monthly"
lookback_days = 260  # default history window (trading days) that view.history() returns
checkpoint_days = 250  # a killed 03 resumes from its last checkpoint (every N heartbeats; 0 = off)
checkpoint_after_s = 30.0  # ... once the run has lasted this long (quick runs are simply redone)

# --- Portfolio and orders -----------------------------------------------------------------------
starting_cash = 1_000_000.0  # initial cash
starting_holdings = None  # or a CSV (columns ticker, shares) of what is held before the start
cash_buffer = 0.01  # fraction of equity kept in cash when sizing orders
no_trade_band = 0.002  # leave a held ticker alone if its weight would move less than this
fractional_shares = False  # False: whole shares only
min_trade_value = 0.0  # skip trades smaller than this value (closing a position always trades)
max_leverage = 1.0  # gross exposure sum(|weights|) may be at most this (1.0 = no borrowing)
allow_short = False  # True: negative weights are short sales

# --- Fills and costs ----------------------------------------------------------------------------
fill_timing = "open"  # orders decided after day D's close fill at D+1's "open" or "close"
volume_cap = 0.10  # fill at most this fraction of the day's volume per ticker
unfilled = "cancel"  # the unfilled rest of an order: "cancel", or "carry" to the next day
spread_bps = 4.0  # quoted bid-ask spread in basis points; each fill pays half of it
slippage_bps = 2.0  # further fixed cost per fill, in basis points of the price
impact_coef = 0.1  # square-root impact: coef x daily volatility x sqrt(shares / day's volume)
impact_vol_days = 20  # trading days of total returns behind that daily volatility
commission_rate = 0.0005  # commission as a fraction of traded value (5 bps)
commission_min = 1.0  # minimum commission per trade, charged even on a tiny trade
commission_per_share = 0.0  # commission per share traded

# --- Cash and financing -------------------------------------------------------------------------
cash_interest = False  # True: cash earns risk_free_rate; borrowed cash pays it plus borrow_spread
borrow_spread = 0.01  # annual spread over the risk-free rate on borrowed cash
short_fee_rate = 0.005  # annual stock-borrow fee on the value of short positions

# --- Evaluation ---------------------------------------------------------------------------------
benchmark = "index"  # "index": the members' cap-weighted total return; or a ticker in the data
bar_frequency = "auto"  # daily, weekly, monthly, quarterly bars; "auto": from the data's dates
contest_checks = False  # True: check the market-neutral contest's rules (03 saves their inputs)
risk_free_rate = 0.02  # annual; Sharpe, Sortino and alpha use the daily-compounded equivalent

# --- The weighting rule -------------------------------------------------------------------------
algorithm = "algorithm.py"  # file with compute_weights(view, params); --algorithm overrides

# --- LLM recommendations (strategies/llm.py; pip install 'equity_backtest[llm]') ----------------
llm_backend = "transformers"  # "transformers" (local), "vllm" (local, GPU) or "openai" (any server)
llm_tensor_parallel = 1  # GPUs one model is split across (vllm)
llm_model = ""  # a local folder, a hub id, or an fsspec URL (s3://bucket/models/qwen2.5-7b)
llm_gguf_file = None  # a .gguf file inside llm_model's folder, loaded through transformers
llm_dtype = "auto"  # auto, bfloat16, float16 or float32
llm_quantisation = None  # None, or "nf4": 4-bit NF4 with double quantisation (bitsandbytes)
llm_base_url = "http://127.0.0.1:8000/v1"  # the server, for llm_backend = "openai"
llm_concurrency = 8  # requests in flight to the server
llm_batch_size = 8  # prompts per batch for local generation
llm_max_new_tokens = 512  # a reply that reaches this is marked truncated
llm_temperature = 0.0  # 0 = greedy; with > 0 the seed above makes sampling repeatable
llm_repetition_penalty = 1.0  # > 1 (e.g. 1.3) stops small local models from looping
llm_constrained = True  # constrain replies to the decision's JSON schema
llm_reasoning = False  # a reasoning model: the constraint starts after its </think>
llm_prompt = (
    "v2"  # prompt template: v2 (named) or v2-anon (anonymised), or a .toml path; v1: older logs
)
llm_periods = 4  # reported quarters in each statement
# The lines each statement shows: any fundamental metric in the dataset (defaults: the 14 lines
# every vendor logs), e.g. llm_statement_items = {"income_statement": ["revenue", "ebit"],
# "balance_sheet": ["total_assets", "total_debt"], "cash_flow": ["operating_cash_flow"]}
llm_decisions_dir = "decisions"  # the decision log (append-only shards)
llm_sync_to = None  # e.g. "s3://bucket/decisions": finished shards are copied there
llm_on_failure = "hold"  # an unparseable reply counts as "hold", or is "missing" (left out)
llm_min_confidence = 50.0  # BUY decisions below this confidence are not bought
llm_cutoffs = {}  # more training cutoffs: {"my-model": "2024-06-30"}
