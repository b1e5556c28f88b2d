"""The weighting rule: edit this file (or pass another with --algorithm) to test your own idea.

The contract (see README, "Writing your own algorithm"):

    def compute_weights(view, params) -> pandas.Series

is called after the close of every rebalance day. Return target weights indexed by ticker
(fractions of portfolio value; they may sum to less than 1, the rest stays in cash). Tickers you
hold but leave out are sold; return None to leave the portfolio as it is. Weights must be finite,
non-negative (unless allow_short), their absolute values must sum to at most params.max_leverage,
and they may name only members of view.universe or current holdings; anything else stops the run
with a message naming the ticker and the day. To attach protective stops, return a DataFrame with
columns `weight` and `stop` (a price; NaN for none).

`view` shows only what was known at that close:
    view.date                  the decision day (orders fill at the next open)
    view.universe              index members in force (from the latest list on or before the date)
    view.market()              latest open/high/low/close/volume/market_cap per ticker
    view.history(field, days)  a days x tickers window of a market field, up to this close
    view.returns(days)         daily total returns (splits, dividends, delistings accounted for)
    view.fundamentals()        latest reported fundamentals public by this close
    view.fundamentals_history(metric, periods)   the last reported periods of a metric
    view.metadata              name, sector, ISIN
    view.holdings, view.weights, view.cash, view.portfolio_value   the current portfolio
`params` is the frozen Parameters object built from parameters.py and the command line.

This default: market-capitalisation weights of the index members, i.e. track the index.
"""

import pandas as pd


def compute_weights(view, params) -> pd.Series:
    caps = view.market(view.universe)["market_cap"].dropna()
    caps = caps[caps > 0]
    return caps / caps.sum()
