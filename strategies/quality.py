"""Quality (gross profitability): hold the TOP_N members with the highest gross profit / total
assets (Novy-Marx), from the latest public report, equally weighted.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold


def score(view, params):
    return themes.gross_profitability(view)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
