"""Value: hold the TOP_N index members with the highest book-to-market, equally weighted.

book-to-market = total_equity (latest report public by the decision day's close) / market_cap
(at that close). Members with no report yet, or negative book equity, are left out.
"""

import pandas as pd

TOP_N = 20  # how many stocks to hold


def compute_weights(view, params) -> pd.Series:
    members = view.universe
    book = view.fundamentals(["total_equity"], tickers=members)["total_equity"]
    cap = view.market(members)["market_cap"]
    ratio = (book / cap)[(book > 0) & (cap > 0)].dropna()
    chosen = ratio.sort_values(ascending=False, kind="stable").index[:TOP_N]
    return pd.Series(1.0 / len(chosen), index=chosen) if len(chosen) else pd.Series(dtype=float)
