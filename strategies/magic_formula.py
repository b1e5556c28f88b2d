"""Greenblatt's Magic Formula: rank members on earnings yield and on return on capital, hold the
TOP_N with the best combined rank, equally weighted; financials and utilities excluded.

earnings yield = EBIT / (market cap + total debt - cash)
return on capital = EBIT / (current assets - current liabilities + net fixed assets)
EBIT is the latest public quarter's, annualised x 4. Greenblatt rebalances yearly; run this theme
with rebalance = "quarterly" (as the README's examples do) or "yearly".
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold


def score(view, params):
    return themes.magic_formula(view)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
