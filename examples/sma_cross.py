"""Moving-average cross on one stock (the single-instrument example of docs/coming_from.md): hold
the stock with all of the portfolio while its 10-day average close is above its 20-day average,
else hold cash. The same rule as backtesting.py's SmaCross tutorial, written as a weighting rule.
"""

import pandas as pd

FAST, SLOW = 10, 20
REBALANCE = "daily"  # written for every bar: a run asked less often warns (docs/strategies.md)


def compute_weights(view, params):
    closes = view.history("close", days=SLOW, split_adjusted=True)
    if len(closes) < SLOW:
        return pd.Series(dtype=float)  # not enough history yet: stay in cash
    fast, slow = closes.iloc[-FAST:].mean(), closes.mean()
    return (fast > slow).astype(float)  # 1.0: all in; 0.0: sell
