"""Low volatility: hold the TOP_N members with the lowest standard deviation of daily total
returns over the last DAYS trading days, equally weighted.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold
DAYS = 252  # volatility window in trading days


def score(view, params):
    return themes.low_volatility(view, DAYS)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
