"""Inference that holds under overlapping observations (V9): every t-statistic the project
reports about a trading rule comes from here.

Trades of one rule are not independent draws: setups entered on the same day share that day's
market, and setups whose holding periods overlap share the days they are both open. The naive
t = mean / (sd / sqrt(n)) treats them as independent and overstates the evidence, often by an
order of magnitude. The estimators here, textbook ones, allow for both:

- `series_mean`: the mean of one time series (an IC per window, a per-period spread) with
  Newey-West (1987) standard errors, Bartlett weights, lag L = floor(4 (T/100)^(2/9)) unless
  given;
- `panel_mean`: the mean over many observations stamped with their period (setups by their
  study day) with Driscoll-Kraay (1998) standard errors: residuals are summed within each period
  (any correlation across the observations of one period is allowed), and the period sums get
  Newey-West weights up to lag L (periods up to L apart may correlate: L is the holding horizon
  in periods).

Both are the variance of a sample mean with no small-sample correction, as statsmodels computes
for a regression on a constant with `cov_type="HAC"` and `cov_type="hac-groupsum"`
(tests/test_inference.py checks them against it). Each result also carries the naive t, so a
report can show how much the overlap mattered, and a 95% interval (mean +- 1.96 se).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959964


def auto_lags(n: int) -> int:
    """Newey and West's rule of thumb for the lag: floor(4 (n/100)^(2/9))."""
    return int(math.floor(4 * (max(n, 1) / 100) ** (2 / 9)))


def _bartlett(sums: np.ndarray, lags: int) -> float:
    """sum_{l=-L..L} (1 - |l|/(L+1)) sum_g s_g s_{g-l}, for period sums s in time order."""
    total = float(sums @ sums)
    for lag in range(1, min(lags, len(sums) - 1) + 1):
        total += 2 * (1 - lag / (lags + 1)) * float(sums[lag:] @ sums[:-lag])
    return total


def _result(values: np.ndarray, var: float, lags: int, periods: int) -> dict:
    n = len(values)
    mean = float(values.mean())
    se = math.sqrt(var) if var > 0 else float("nan")
    sd = float(values.std(ddof=1)) if n > 1 else float("nan")
    naive = mean / (sd / math.sqrt(n)) if n > 1 and sd > 0 else float("nan")
    return {
        "n": n,
        "periods": periods,
        "lags": lags,
        "mean": mean,
        "se": se,
        "t_stat": mean / se if se == se and se > 0 else float("nan"),
        "t_stat_naive": naive,
        "ci95": [mean - Z95 * se, mean + Z95 * se] if se == se else [float("nan")] * 2,
    }


def series_mean(values, lags: int | None = None) -> dict:
    """Mean of a time series (in time order; NaN dropped) with Newey-West standard errors."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    lags = auto_lags(len(x)) if lags is None else int(lags)
    if len(x) < 2:
        return _result(x if len(x) else np.array([np.nan]), float("nan"), lags, len(x))
    e = x - x.mean()
    return _result(x, _bartlett(e, lags) / len(x) ** 2, lags, len(x))


def panel_mean(values, periods, lags: int) -> dict:
    """Mean over observations stamped with a period (any integers; consecutive periods differ
    by 1, and a period with no observation counts as an empty one), with Driscoll-Kraay standard
    errors up to `lags` periods apart."""
    x = np.asarray(values, dtype=float)
    p = np.asarray(periods)
    ok = np.isfinite(x)
    x, p = x[ok], p[ok].astype(np.int64)
    if len(x) < 2:
        return _result(x if len(x) else np.array([np.nan]), float("nan"), lags, len(set(p)))
    e = x - x.mean()
    sums = np.bincount(p - p.min(), weights=e)
    return _result(x, _bartlett(sums, int(lags)) / len(x) ** 2, int(lags), int(np.unique(p).size))


def evidence(result: dict, unit: str = "") -> str:
    """A plain verdict on a mean: 'no evidence of an edge' when its 95% interval spans zero."""
    low, high = result["ci95"]
    if not (low == low and high == high):
        return "too few observations to judge"
    shown = f"95% interval [{low:+.3f}{unit}, {high:+.3f}{unit}]"
    if low <= 0 <= high:
        return f"no evidence of an edge ({shown})"
    return f"{'a positive' if low > 0 else 'a negative'} edge ({shown})"
