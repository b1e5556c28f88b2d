"""Beta-adjusted residual momentum (Blitz, Huij and Martens): regress each member's daily total
returns on the cap-weighted return of the index members over 36 months (ESTIMATION days) ending a
month ago; hold the TOP_N with the highest sum of residuals over t-252 to t-21 divided by their
standard deviation, equally weighted.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold
LOOKBACK, SKIP, ESTIMATION = 252, 21, 756  # trading days


def score(view, params):
    return themes.residual_momentum(view, LOOKBACK, SKIP, ESTIMATION)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
