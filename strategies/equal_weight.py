"""Equal weight: every index member gets the same weight (a baseline that ignores size).

Parameters: none; with rebalance = "monthly" the weights return to equal each month and drift
with prices in between.
"""

import pandas as pd


def score(view, params) -> pd.Series:
    """Every member scores the same."""
    return pd.Series(1.0, index=view.universe)


def compute_weights(view, params) -> pd.Series:
    members = view.universe
    return pd.Series(1.0 / len(members), index=members) if len(members) else pd.Series(dtype=float)
