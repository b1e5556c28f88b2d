"""Backtest parameters: plain Python, so values may be computed. Flags of the numbered scripts
override them (--start, --end, --algorithm, --set name=value). Names starting with '_' are helpers;
any other unknown name is an error, so a typo never passes silently."""

import datetime as _dt

# --- Data --------------------------------------------------------------------------------------
source = "simulated"  # vendor whose data the backtest uses: simulated (built in, offline)
sim_index_size = 100  # simulated index: the top N tickers by market cap, listed monthly
index = f"TOP{sim_index_size}"  # index whose point-in-time members form the universe
datalog_dir = "datalog"  # raw, immutable vendor logfiles (01 writes, 02 reads)
datasets_dir = "datasets"  # versioned feather datasets (02 writes, 03 reads)
results_dir = "results"  # one archive folder per backtest run (03 writes, 04 adds the tear sheet)
dataset_version = None  # None = the version datasets/CURRENT points to; or e.g. "v000003"

# --- Simulated market (used by 01 when source = "simulated") ------------------------------------
seed = 42  # same seed and settings -> byte-identical datalog, whatever today's date
sim_n_tickers = 300  # tickers that ever trade (IPOs and delistings included)
sim_start = _dt.date(2005, 1, 1)  # first simulated day (history before the backtest, for lookbacks)
sim_end = _dt.date(2024, 12, 31)  # last simulated day

# --- Point-in-time fundamentals -----------------------------------------------------------------
# A fundamental becomes visible on its announcement date; where a vendor gives none, on period end
# plus this many calendar days (per metric, with a default).
fundamental_lag_days = {"default": 45}

# --- Backtest window and schedule ---------------------------------------------------------------
start = "2007-01-01"  # first heartbeat (the first trading day on or after it)
end = "2024-12-31"  # last heartbeat, inclusive
heartbeat = "daily"  # the loop marks to market and fills orders every trading day
rebalance = (
    "monthly"  # when compute_weights runs: daily, weekly, monthly, quarterly, yearly, never, or N
)
lookback_days = 260  # default history window (trading days) that view.history() returns

# --- Portfolio and orders -----------------------------------------------------------------------
starting_cash = 1_000_000.0  # initial cash
cash_buffer = 0.01  # fraction of equity kept in cash when sizing orders
no_trade_band = 0.002  # skip re-weighting a held ticker whose weight would move less than this
fractional_shares = False  # False: whole shares only
min_trade_value = 0.0  # skip trades smaller than this cash value (closing a position always trades)
max_leverage = 1.0  # weights may sum to at most this (1.0 = no leverage)

# --- Fills and costs ----------------------------------------------------------------------------
fill_timing = "open"  # orders decided after day D's close fill at D+1's "open" or "close"
volume_cap = 0.10  # fill at most this fraction of the day's volume per ticker
unfilled = (
    "cancel"  # what happens to the unfilled rest of an order: "cancel" or "carry" to next day
)
slippage_bps = (
    5.0  # buys pay, sells give up, this many basis points of the price (half-spread + impact)
)
commission_rate = 0.0005  # commission as a fraction of traded value (5 bps)
commission_min = 1.0  # minimum commission per trade, charged even on a tiny trade
commission_per_share = 0.0  # commission per share traded

# --- Evaluation ---------------------------------------------------------------------------------
risk_free_rate = 0.02  # annual; Sharpe, Sortino and alpha use the daily-compounded equivalent

# --- The weighting rule -------------------------------------------------------------------------
algorithm = "algorithm.py"  # file with compute_weights(view, params); --algorithm overrides
