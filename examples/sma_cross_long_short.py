"""backtesting.py's SmaCross tutorial exactly, as a weighting rule: when the 10-day average close
crosses above the 20-day one, be long with all of the portfolio; when it crosses below, be short
with all of it (backtesting.py's `buy()` and `sell()` with `exclusive_orders=True`); before the
first cross, hold cash. A cross is backtesting.py's `crossover`: below (strictly) on the bar
before and above (strictly) on this bar, so a bar where the averages are equal starts no trade.
Needs `allow_short = True` (docs/coming_from.md runs it on backtesting.py's GOOG data).
"""

import numpy as np
import pandas as pd

FAST, SLOW = 10, 20
REBALANCE = "daily"  # written for every bar: a run asked less often warns (docs/strategies.md)


def compute_weights(view, params):
    closes = view.history("close", days=100_000, split_adjusted=True)  # every bar so far
    fast = closes.rolling(FAST).mean().to_numpy()
    slow = closes.rolling(SLOW).mean().to_numpy()
    up = (fast[:-1] < slow[:-1]) & (fast[1:] > slow[1:])  # the bar after each pair
    down = (fast[:-1] > slow[:-1]) & (fast[1:] < slow[1:])
    crosses = np.flatnonzero(up | down)
    if len(crosses) == 0:
        return pd.Series(0.0, index=closes.columns)  # no cross yet: cash
    last = crosses[-1]
    return pd.Series(np.where(up[last], 1.0, -1.0), index=closes.columns)
