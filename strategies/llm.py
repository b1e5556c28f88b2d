"""LLM recommendations (L6): trade on a model's BUY/SELL/HOLD calls from point-in-time statements.

On each rebalance day every index member with reported statements gets a decision: from the
decision log when one is logged for this model, prompt, date and sampling, else the model is asked
now (all missing members in one batch) and the answers are logged. Set the model in parameters.py
(llm_model, llm_backend, ...); log decisions ahead with `python -m equity_backtest.llm` for large
runs.

Decisions to weights:
- BUY with confidence >= llm_min_confidence: bought, weighted by confidence;
- HOLD: a held name keeps its current weight; an unheld one is not bought;
- SELL: sold;
- a reply that could not be parsed (or was truncated) counts as HOLD when llm_on_failure = "hold",
  or is left out (sold, like SELL) when "missing"; 04 reports the rate either way.
Held names keep their weight first; the BUYs share what is left, so the total never passes 1.
"""

import pandas as pd

from equity_backtest.llm.answers import PARSED
from equity_backtest.llm.session import decisions_for


def compute_weights(view, params) -> pd.Series:
    decisions = decisions_for(view, params).set_index("ticker")
    failed = ~decisions["status"].isin(PARSED)
    if params.llm_on_failure == "hold":
        decisions.loc[failed, "decision"] = "HOLD"
    else:
        decisions = decisions[~failed]
    current = view.weights
    hold = decisions.index[decisions["decision"] == "HOLD"]
    kept = current.reindex(hold).dropna()
    kept = kept[kept > 0]
    buys = decisions[
        (decisions["decision"] == "BUY") & (decisions["confidence"] >= params.llm_min_confidence)
    ]["confidence"].astype(float)
    budget = max(0.0, 1.0 - float(kept.sum()))
    bought = buys / buys.sum() * budget if len(buys) and buys.sum() > 0 else pd.Series(dtype=float)
    weights = pd.concat([kept, bought]).groupby(level=0).sum()
    return weights[weights > 0]
