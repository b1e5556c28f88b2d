"""Backtest overfitting across a set of trials (V7).

Probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation (CSCV;
Bailey, Borwein, Lopez de Prado and Zhu, 2015):
  1. the T x N matrix of daily returns (T days, N trials) is cut into S equal blocks of days;
  2. for every way of choosing S/2 blocks as the in-sample set (the rest is out-of-sample),
     the trial with the best in-sample Sharpe ratio is found, and its out-of-sample Sharpe ratio
     is ranked among all trials' out-of-sample Sharpe ratios: w = rank / (N + 1), and its logit
     lambda = ln(w / (1 - w));
  3. PBO = the share of splits where lambda <= 0: the in-sample winner is at or below the
     out-of-sample median;
  4. performance degradation: the slope of a least-squares line of the winner's out-of-sample
     Sharpe on its in-sample Sharpe across splits (near 0 or negative: in-sample success says
     nothing); probability of loss: the share of splits where the winner's out-of-sample Sharpe
     is negative.
Deflated Sharpe ratio (Bailey and Lopez de Prado, 2014): the probability that the best trial's
true Sharpe ratio exceeds what the best of N unskilled trials would show by luck,
  DSR = Phi( (SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2) ),
  SR0 = sqrt(Var[SR_n]) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))),  g = 0.5772...
with SR the daily (non-annualised) Sharpe ratio, kurtosis not in excess, and Var[SR_n] the
variance of the trials' daily Sharpe ratios.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from .metrics import sharpe_ratio

EULER_GAMMA = 0.5772156649015329


@dataclasses.dataclass
class CSCVResult:
    pbo: float
    slope: float
    intercept: float
    probability_of_loss: float
    logits: np.ndarray
    in_sample: np.ndarray  # the in-sample winner's in-sample Sharpe, per split
    out_of_sample: np.ndarray  # ... and its out-of-sample Sharpe
    splits: int
    blocks: int


def _sharpe(total: np.ndarray, total_sq: np.ndarray, n: int) -> np.ndarray:
    mean = total / n
    var = (total_sq - n * mean**2) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, mean / np.sqrt(np.maximum(var, 0)), 0.0) * np.sqrt(252)


def cscv(returns: pd.DataFrame | np.ndarray, blocks: int = 16) -> CSCVResult:
    """PBO and friends for a T x N matrix of daily returns (columns are trials)."""
    m = np.asarray(returns, dtype=float)
    T, N = m.shape
    if N < 2:
        raise ValueError("CSCV needs at least two trials")
    if blocks < 2 or blocks % 2:
        raise ValueError("the number of blocks must be even and at least 2")
    size = T // blocks
    if size < 2:
        raise ValueError(f"{T} days are too few for {blocks} blocks")
    m = m[: size * blocks]  # equal blocks; the last T mod S days are left out
    parts = m.reshape(blocks, size, N)
    sums, sq = parts.sum(axis=1), (parts**2).sum(axis=1)  # blocks x N
    total, total_sq = sums.sum(axis=0), sq.sum(axis=0)
    half = blocks // 2
    combos = np.array(list(itertools.combinations(range(blocks), half)))
    n = size * half
    logits, is_best, oos_best = [], [], []
    for lo in range(0, len(combos), 2048):  # vectorised over chunks of splits
        chosen = combos[lo : lo + 2048]
        s_in, q_in = sums[chosen].sum(axis=1), sq[chosen].sum(axis=1)  # splits x N
        sr_in = _sharpe(s_in, q_in, n)
        sr_out = _sharpe(total - s_in, total_sq - q_in, n)
        best = np.argmax(sr_in, axis=1)
        rows = np.arange(len(chosen))
        winner = sr_out[rows, best][:, None]
        rank = 1 + (sr_out < winner).sum(axis=1) + 0.5 * ((sr_out == winner).sum(axis=1) - 1)
        w = rank / (N + 1)
        logits.append(np.log(w / (1 - w)))
        is_best.append(sr_in[rows, best])
        oos_best.append(winner[:, 0])
    logits, is_best, oos_best = map(np.concatenate, (logits, is_best, oos_best))
    if np.ptp(is_best) > 0:
        slope, intercept = np.polyfit(is_best, oos_best, 1)
    else:
        slope, intercept = float("nan"), float(np.mean(oos_best))
    return CSCVResult(
        float(np.mean(logits <= 0)),
        float(slope),
        float(intercept),
        float(np.mean(oos_best < 0)),
        logits,
        is_best,
        oos_best,
        len(combos),
        blocks,
    )


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> dict[str, float]:
    """Deflated Sharpe ratio of one trial's daily returns, given all N trials' daily Sharpe ratios."""
    r = np.asarray(returns, dtype=float)
    T, N = len(r), len(trial_sharpes)
    sd = r.std(ddof=1)
    sr = r.mean() / sd if sd > 0 else 0.0
    d = r - r.mean()
    m2 = np.mean(d**2)
    skew = float(np.mean(d**3) / m2**1.5) if m2 > 0 else 0.0
    kurt = float(np.mean(d**4) / m2**2) if m2 > 0 else 3.0
    norm = NormalDist()
    var_sr = float(np.var(trial_sharpes, ddof=1)) if N > 1 else 0.0
    if N > 1:
        sr0 = math.sqrt(var_sr) * (
            (1 - EULER_GAMMA) * norm.inv_cdf(1 - 1 / N)
            + EULER_GAMMA * norm.inv_cdf(1 - 1 / (N * math.e))
        )
    else:
        sr0 = 0.0
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    z = (sr - sr0) * math.sqrt(T - 1) / math.sqrt(denom) if denom > 0 else float("nan")
    return {
        "sharpe_daily": float(sr),
        "expected_max_sharpe_daily": float(sr0),
        "deflated_sharpe_ratio": float(norm.cdf(z)) if math.isfinite(z) else float("nan"),
        "trials": N,
        "days": T,
    }


def analyse(
    returns: pd.DataFrame, blocks: int = 16, rf_per_bar: float = 0.0, periods: int = 252
) -> dict:
    """Everything V7 reports for a set of trials (columns of `returns`, aligned bars). The best
    trial's Sharpe ratio is the tear sheet's (metrics.sharpe_ratio: excess over the risk-free
    rate, P bars a year); the CSCV ranks and the deflated Sharpe use per-bar raw Sharpe ratios."""
    result = cscv(returns, blocks)
    m = returns.to_numpy(dtype=float)
    sds = m.std(axis=0, ddof=1)
    daily_sharpes = np.where(sds > 0, m.mean(axis=0) / np.where(sds > 0, sds, 1), 0.0)
    best = int(np.argmax(daily_sharpes))
    return {
        "trials": list(returns.columns),
        "days": int(len(returns)),
        "blocks": blocks,
        "splits": result.splits,
        "pbo": result.pbo,
        "degradation_slope": result.slope,
        "degradation_intercept": result.intercept,
        "probability_of_loss": result.probability_of_loss,
        "best_trial": str(returns.columns[best]),
        "best_annual_sharpe": sharpe_ratio(m[:, best], rf_per_bar, periods),
        "deflated_sharpe": deflated_sharpe(m[:, best], daily_sharpes),
    }, result
