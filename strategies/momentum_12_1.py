"""12-1 momentum: hold the TOP_N members with the highest total return from 12 months to 1 month
ago (trading days t-252 to t-21; the last month is skipped for short-term reversal), equally
weighted.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold
LOOKBACK, SKIP = 252, 21  # trading days


def score(view, params):
    return themes.momentum_12_1(view, LOOKBACK, SKIP)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
