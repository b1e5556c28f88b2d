"""Dividend yield: hold the TOP_N members with the highest trailing dividend yield (cash dividends
per share with ex-dates in the last DAYS trading days / the latest close), equally weighted.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold
DAYS = 252  # trailing window in trading days


def score(view, params):
    return themes.dividend_yield(view, DAYS)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
