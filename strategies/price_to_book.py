"""Value (price-to-book): hold the TOP_N members with the lowest price-to-book, i.e. the highest
book-to-market, equally weighted.

score = total equity (latest report public by the decision day) / market cap; firms with
non-positive book equity are left out.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold


def score(view, params):
    return themes.book_to_market(view)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
