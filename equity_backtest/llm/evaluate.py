"""Evaluating decisions (L5, L6): were the calls right, was the confidence calibrated, how many
replies failed, and is any of it explained by the model having read the future in training?

Forward return: the total return from the as-of close over the next `horizon` trading days (a
delisting ends it at its value). A BUY is a hit when the forward return beats the index members'
average over the same days; a SELL when it trails it; HOLD has no hit. Every metric is given for
all decisions and split by the training-window flag (inside / outside / unknown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import answers

CONFIDENCE_BINS = [0, 50, 70, 85, 100.0001]
HORIZON = 63  # bars ahead a decision is scored on (a quarter of daily bars)


def forward_returns(panel, decisions: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Adds fwd_return and excess (over the equal-weight average of that day's index members)."""
    growth = np.nan_to_num(panel.total_return, nan=0.0) + 1.0
    cum = np.vstack([np.ones(growth.shape[1]), np.cumprod(growth, axis=0)])
    codes = pd.Series(np.arange(len(panel.tickers)), index=panel.tickers)
    t = panel.dates.searchsorted(pd.to_datetime(decisions["as_of"]), side="right") - 1
    t_end = np.minimum(t + horizon, len(panel.dates) - 1)
    i = codes.reindex(decisions["ticker"].astype(str)).to_numpy()
    # a decision near the data's end has fewer bars ahead than the horizon: it is not scored
    # (its return would be over a shorter, different horizon) but counted as partial
    known = ~np.isnan(i) & (t >= 0) & (t + horizon <= len(panel.dates) - 1)
    out = decisions.assign(
        fwd_return=np.nan, excess=np.nan, horizon_bars=np.where(t >= 0, t_end - t, 0)
    )
    if not known.any():
        return out
    ii, ts, te = i[known].astype(int), t[known], t_end[known]
    fwd = cum[te + 1, ii] / cum[ts + 1, ii] - 1
    members = panel.membership[np.maximum(panel.list_of_day[ts], 0)]
    bench = np.array(
        [
            np.nanmean(cum[e + 1, m] / cum[s + 1, m] - 1) if m.any() else np.nan
            for s, e, m in zip(ts, te, members, strict=True)
        ]
    )
    out.loc[known, "fwd_return"] = fwd
    out.loc[known, "excess"] = fwd - bench
    return out


def _summary(frame: pd.DataFrame) -> dict:
    parsed = frame["status"].isin(answers.PARSED)
    out = {
        "decisions": int(len(frame)),
        "parse_failure_rate": float((~parsed).mean()) if len(frame) else None,
        "truncation_rate": float((frame["status"] == answers.TRUNCATED).mean())
        if len(frame)
        else None,
        "statuses": {k: int(v) for k, v in frame["status"].value_counts().items()},
        "by_decision": {},
    }
    good = frame[parsed]
    for decision in answers.DECISIONS:
        rows = good[good["decision"] == decision]
        hits = _hits(rows)
        out["by_decision"][decision] = {
            "count": int(len(rows)),
            "mean_forward_return": _mean(rows["fwd_return"]),
            "mean_excess_return": _mean(rows["excess"]),
            "hit_rate": _mean(hits) if decision != "HOLD" else None,
        }
    calls = good[good["decision"] != "HOLD"]
    out["hit_rate"] = _mean(_hits(calls))
    bins = pd.cut(calls["confidence"].astype(float), CONFIDENCE_BINS, right=False)
    out["calibration"] = [
        {
            "confidence": f"{b.left:g}-{min(b.right, 100):g}",
            "count": int(len(g)),
            "mean_confidence": _mean(g["confidence"]),
            "hit_rate": _mean(_hits(g)),
        }
        for b, g in calls.groupby(bins, observed=False)
    ]
    return out


def _hits(rows: pd.DataFrame) -> pd.Series:
    ex = rows["excess"]
    hit = np.where(rows["decision"] == "BUY", ex > 0, ex < 0).astype(float)
    return pd.Series(np.where(ex.isna(), np.nan, hit), index=rows.index)


def _mean(values) -> float | None:
    values = pd.Series(values, dtype=float).dropna()
    return float(values.mean()) if len(values) else None


def evaluate(panel, decisions: pd.DataFrame, horizon: int = HORIZON) -> tuple[dict, pd.DataFrame]:
    """Metrics for all decisions, by training window, and side by side per model setting."""
    return score(forward_returns(panel, decisions, horizon), horizon)


def score(frame: pd.DataFrame, horizon: int = HORIZON) -> tuple[dict, pd.DataFrame]:
    """The metrics of decisions whose forward returns are already known (forward_returns, or a
    run archive's llm_decisions_used.csv, which 03 writes with them)."""
    partial = int((frame["horizon_bars"] < horizon).sum()) if "horizon_bars" in frame else 0
    result = {
        "horizon_days": horizon,
        "partial_horizon": partial,
        "all": _summary(frame),
        "by_window": {},
        "by_model": [],
    }
    for flag, rows in frame.groupby("window"):
        result["by_window"][str(flag)] = _summary(rows)
    for (model, quant, prompt, window), rows in frame.groupby(
        ["model_id", "quantisation", "prompt_version", "window"], dropna=False
    ):
        s = _summary(rows)
        result["by_model"].append(
            {
                "model_id": model,
                "quantisation": quant,
                "prompt_version": prompt,
                "window": window,
                "decisions": s["decisions"],
                "hit_rate": s["hit_rate"],
                "parse_failure_rate": s["parse_failure_rate"],
                "truncation_rate": s["truncation_rate"],
            }
        )
    inside = (frame["window"] == "inside").mean() if len(frame) else 0.0
    unknown = (frame["window"] == "unknown").mean() if len(frame) else 0.0
    result["inside_share"] = float(inside)
    result["findings"] = []
    if unknown > 0.5:
        result["findings"].append(
            f"The training cutoff of the model behind {unknown:.0%} of the decisions is unknown, "
            "so whether it could have read how these companies fared cannot be judged; give it "
            "with llm_cutoffs in parameters.py."
        )
    if inside > 0.5:
        result["findings"].append(
            f"{inside:.0%} of the LLM's decisions are dated inside its training window: it may "
            "have read how these companies fared, so their results can hold look-ahead. Judge the "
            "model on the decisions outside the window."
        )
    fail = result["all"]["parse_failure_rate"]
    if fail:
        result["findings"].append(
            f"{fail:.1%} of the LLM's replies could not be used (unparseable or truncated); they "
            "were treated as set by llm_on_failure."
        )
    return result, frame
