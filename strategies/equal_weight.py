"""Equal weight: every index member gets the same weight (a baseline that ignores size).

Parameters used: none beyond the schedule in parameters.py (rebalance = "monthly" restores equal
weights each month; between rebalances weights drift with prices).
"""

import pandas as pd


def compute_weights(view, params) -> pd.Series:
    members = view.universe
    return pd.Series(1.0 / len(members), index=members) if len(members) else pd.Series(dtype=float)
