"""Performance metrics with pyfolio/empyrical conventions (V2): sample standard deviation (ddof=1),
compounded annual return, and P bars a year: 252 for daily bars (the default), 52 weekly, 12
monthly (frequency.PERIODS_PER_YEAR). Each function's docstring is its definition; the test-suite
checks them against empyrical-reloaded on the same returns (its `period` argument).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..data.frequency import PERIODS_PER_YEAR

DAYS_PER_YEAR = PERIODS_PER_YEAR["daily"]
P = DAYS_PER_YEAR  # default bars per year in the signatures below


def cumulative_return(r: np.ndarray) -> float:
    """prod(1 + r) - 1."""
    return float(np.prod(1.0 + r) - 1.0)


def annual_return(r: np.ndarray, periods: int = P) -> float:
    """CAGR: (1 + cumulative return) ** (P / number of bars) - 1."""
    if len(r) == 0:
        return float("nan")
    return float((1.0 + cumulative_return(r)) ** (periods / len(r)) - 1.0)


def annual_volatility(r: np.ndarray, periods: int = P) -> float:
    """Sample standard deviation of per-bar returns x sqrt(P)."""
    return float(np.std(r, ddof=1) * np.sqrt(periods)) if len(r) > 1 else float("nan")


def sharpe_ratio(r: np.ndarray, rf_daily: float = 0.0, periods: int = P) -> float:
    """mean(r - rf) / std(r - rf, ddof=1) x sqrt(P), with rf the per-bar risk-free rate (the one
    Sharpe ratio of the project: the tear sheet, trial tables and the overfitting report)."""
    x = r - rf_daily
    sd = np.std(x, ddof=1) if len(x) > 1 else 0.0
    return float(np.mean(x) / sd * np.sqrt(periods)) if sd > 0 else float("nan")


def sortino_ratio(r: np.ndarray, rf_daily: float = 0.0, periods: int = P) -> float:
    """mean(r - rf) x P / downside risk, where downside risk = sqrt(mean(min(r - rf, 0)^2)) x sqrt(P)."""
    x = r - rf_daily
    downside = np.sqrt(np.mean(np.minimum(x, 0.0) ** 2)) * np.sqrt(periods)
    return float(np.mean(x) * periods / downside) if downside > 0 else float("nan")


def drawdown(r: np.ndarray) -> np.ndarray:
    """Drawdown after each day: wealth / running peak - 1, with the peak starting at 1 before day one."""
    wealth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.r_[1.0, wealth])[1:]
    return wealth / peak - 1.0


def max_drawdown(r: np.ndarray) -> float:
    """The most negative drawdown (e.g. -0.35 for a 35% peak-to-trough loss)."""
    return float(drawdown(r).min()) if len(r) else float("nan")


def calmar_ratio(r: np.ndarray, periods: int = P) -> float:
    """Annual return / |max drawdown|."""
    mdd = max_drawdown(r)
    return float(annual_return(r, periods) / -mdd) if mdd < 0 else float("nan")


def beta(r: np.ndarray, b: np.ndarray, rf_daily: float = 0.0) -> float:
    """Cov(r - rf, b - rf) / Var(b - rf)."""
    x, y = r - rf_daily, b - rf_daily
    var = np.mean((y - y.mean()) ** 2)
    return float(np.mean((x - x.mean()) * (y - y.mean())) / var) if var > 0 else float("nan")


def alpha(r: np.ndarray, b: np.ndarray, rf_daily: float = 0.0, periods: int = P) -> float:
    """Annualised Jensen's alpha: (1 + mean((r - rf) - beta (b - rf))) ** P - 1."""
    be = beta(r, b, rf_daily)
    return float((1.0 + np.mean((r - rf_daily) - be * (b - rf_daily))) ** periods - 1.0)


def tracking_error(r: np.ndarray, b: np.ndarray, periods: int = P) -> float:
    """Sample standard deviation of the active return r - b, x sqrt(P)."""
    return annual_volatility(r - b, periods)


def information_ratio(r: np.ndarray, b: np.ndarray, periods: int = P) -> float:
    """mean(r - b) x P / tracking error (empyrical's excess_sharpe x sqrt(P)). NaN when the
    active return is constant to rounding (tracking error below 1e-10 a year): a portfolio that
    is its benchmark has no information ratio, not a huge one made of rounding noise."""
    te = tracking_error(r, b, periods)
    return float(np.mean(r - b) * periods / te) if te > 1e-10 else float("nan")


def omega_ratio(r: np.ndarray, rf_daily: float = 0.0) -> float:
    """Sum of gains over the risk-free rate / sum of losses under it (threshold 0 excess return)."""
    x = r - rf_daily
    losses = -x[x < 0].sum()
    return float(x[x > 0].sum() / losses) if losses > 0 else float("nan")


def stability(r: np.ndarray) -> float:
    """R-squared of a straight line fitted to the cumulative log return (1 = perfectly steady)."""
    if len(r) < 3:
        return float("nan")
    y = np.cumsum(np.log1p(r))
    if np.std(y) == 0:
        return float("nan")
    c = np.corrcoef(np.arange(len(y)), y)[0, 1]
    return float(c * c)


def skewness(r: np.ndarray) -> float:
    """Sample skewness (Fisher-Pearson, biased, as scipy.stats.skew and pyfolio)."""
    d = r - r.mean()
    m2 = np.mean(d**2)
    return float(np.mean(d**3) / m2**1.5) if m2 > 0 else float("nan")


def kurtosis(r: np.ndarray) -> float:
    """Excess kurtosis (Fisher, biased, as scipy.stats.kurtosis and pyfolio): 0 for a normal."""
    d = r - r.mean()
    m2 = np.mean(d**2)
    return float(np.mean(d**4) / m2**2 - 3.0) if m2 > 0 else float("nan")


def tail_ratio(r: np.ndarray) -> float:
    """|95th percentile| / |5th percentile| of daily returns (above 1: fatter right tail)."""
    low = abs(np.percentile(r, 5))
    return float(abs(np.percentile(r, 95)) / low) if low > 0 else float("nan")


def value_at_risk(r: np.ndarray, cutoff: float = 0.05) -> float:
    """Historical daily VaR: the `cutoff` quantile of daily returns (linear interpolation), as a
    return (e.g. -0.021: on 5% of days the loss was 2.1% or worse). Not parametric, not Cornish-Fisher."""
    return float(np.percentile(r, 100 * cutoff))


def conditional_value_at_risk(r: np.ndarray, cutoff: float = 0.05) -> float:
    """Historical daily CVaR (expected shortfall): the mean of the worst floor((n - 1) x cutoff) + 1
    daily returns (empyrical's definition)."""
    k = int((len(r) - 1) * cutoff)
    return float(np.mean(np.partition(r, k)[: k + 1]))


def probabilistic_sharpe_ratio(r: np.ndarray, rf_daily: float = 0.0) -> float:
    """The probability that the true Sharpe ratio is above 0 given this sample (Bailey and Lopez
    de Prado, 2012): Phi(SR sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)), with SR the
    per-bar Sharpe ratio (excess over rf), g3 the skewness and g4 the kurtosis (3 for a normal;
    pandas' bias-corrected sample moments, as quantstats computes it)."""
    x = r - rf_daily
    n = len(x)
    sd = np.std(x, ddof=1) if n > 2 else 0.0
    if sd == 0 or n < 4:
        return float("nan")
    sr = np.mean(x) / sd
    moments = pd.Series(r)
    g3, g4 = float(moments.skew()), float(moments.kurt()) + 3.0
    var = (1 - g3 * sr + (g4 - 1) / 4 * sr**2) / (n - 1)
    if not var > 0:
        return float("nan")
    return float(0.5 * math.erfc(-(sr / math.sqrt(var)) / math.sqrt(2)))


def trailing_returns(r: np.ndarray, periods: int = P) -> dict[str, float | None]:
    """The last 1 year's cumulative return and the last 3, 5 and 10 years' annual (CAGR)
    returns, counted in bars back from the end (None where the run is shorter)."""
    out = {}
    for years in (1, 3, 5, 10):
        bars = years * periods
        if len(r) < bars:
            out[f"trailing_{years}y"] = None
            continue
        growth = float(np.prod(1 + r[-bars:]))
        out[f"trailing_{years}y"] = growth - 1 if years == 1 else growth ** (1 / years) - 1
    return out


def best_and_worst(returns: pd.Series) -> dict[str, float]:
    """The best and worst bar and calendar month (compounded) of a dated return series."""
    monthly = (1 + returns).groupby(returns.index.to_period("M")).prod() - 1
    return {
        "best_bar": float(returns.max()),
        "worst_bar": float(returns.min()),
        "best_month": float(monthly.max()),
        "worst_month": float(monthly.min()),
    }


def return_metrics(r: np.ndarray, rf_daily: float, periods: int = P) -> dict[str, float]:
    """The return-based metrics of one return series of P bars a year."""
    return {
        "cumulative_return": cumulative_return(r),
        "annual_return": annual_return(r, periods),
        "annual_volatility": annual_volatility(r, periods),
        "sharpe_ratio": sharpe_ratio(r, rf_daily, periods),
        "sharpe_ratio_rf0": sharpe_ratio(r, 0.0, periods),
        "probabilistic_sharpe_ratio": probabilistic_sharpe_ratio(r, rf_daily),
        "sortino_ratio": sortino_ratio(r, rf_daily, periods),
        "max_drawdown": max_drawdown(r),
        "calmar_ratio": calmar_ratio(r, periods),
        "omega_ratio": omega_ratio(r, rf_daily),
        "stability": stability(r),
        "skew": skewness(r),
        "kurtosis": kurtosis(r),
        "tail_ratio": tail_ratio(r),
        "daily_value_at_risk": value_at_risk(r),
        "daily_conditional_value_at_risk": conditional_value_at_risk(r),
    }


def relative_metrics(
    r: np.ndarray, b: np.ndarray, rf_daily: float, periods: int = P
) -> dict[str, float]:
    """Metrics of the portfolio against its benchmark."""
    return {
        "alpha": alpha(r, b, rf_daily, periods),
        "beta": beta(r, b, rf_daily),
        "tracking_error": tracking_error(r, b, periods),
        "information_ratio": information_ratio(r, b, periods),
        "correlation": float(np.corrcoef(r, b)[0, 1])
        if len(r) > 2 and np.std(b) > 0 and np.std(r) > 0
        else float("nan"),
    }


def trading_metrics(
    runtime: pd.DataFrame, trades: pd.DataFrame, starting_value: float, periods: int = P
) -> dict[str, float]:
    """Turnover and costs from the runtime log and trade list.

    daily turnover = (bought + sold) / 2 / portfolio value at that close (one-way), averaged over
    all days; costs = commission + slippage, as a share of traded value and of starting value.
    """
    value = runtime["value"].to_numpy()
    traded = (runtime["bought"] + runtime["sold"]).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        daily_turnover = np.where(value > 0, traded / 2.0 / value, 0.0)
    commission = float(runtime["commission"].sum())
    slippage = float(runtime["slippage"].sum())
    total_traded = float(traded.sum())
    rebalance_trades = trades[trades["reason"] == "rebalance"] if len(trades) else trades
    return {
        "mean_daily_turnover": float(daily_turnover.mean()) if len(value) else float("nan"),
        "annual_turnover": float(daily_turnover.mean() * periods) if len(value) else float("nan"),
        "total_commission": commission,
        "total_slippage": slippage,
        "total_costs": commission + slippage,
        "costs_pct_of_traded_value": (commission + slippage) / total_traded
        if total_traded > 0
        else 0.0,
        "costs_pct_of_starting_value": (commission + slippage) / starting_value,
        "number_of_trades": int(len(rebalance_trades)),
        "traded_value": total_traded,
        "dividends_received": float(runtime["dividends"].sum()),
    }
