"""Random selection: TOP_N members drawn at random each rebalance, equally weighted; the baseline
that every other theme must beat, and the noise set for overfitting tests.

The draw is seeded by (params.seed, the decision date), so a run is reproducible and independent of
what ran before; each trial of a sweep gets its own seed.
"""

from equity_backtest.research import themes

TOP_N = 20  # how many stocks to hold


def score(view, params):
    return themes.random_score(view, params.seed)


def compute_weights(view, params):
    return themes.top_n_equal(score(view, params), TOP_N)
