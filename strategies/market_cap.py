"""Market-cap weight: each member in proportion to its market capitalisation (tracks the index).

Parameters: none.
"""

import pandas as pd


def score(view, params) -> pd.Series:
    """Market capitalisation at the close."""
    return view.market(view.universe)["market_cap"]


def compute_weights(view, params) -> pd.Series:
    caps = score(view, params).dropna()
    caps = caps[caps > 0]
    return caps / caps.sum()
