"""Contest checks (V6): the Quantopian contest's risk constraints and score.

Each constraint is measured every day; its soft limit may be broken on at most 2% of the days
where it can be measured, its hard limit never. Measured daily, as the contest did:

  position concentration   largest |weight| of one position                 soft <= 5%,  hard <= 10%
  gross leverage           sum |weights|                                    soft 0.8-1.1, hard 0.7-1.2
  turnover                 63-day mean of daily one-way turnover            soft 5-65%,  hard 3-80%
  net exposure             |sum of weights|                                 soft <= 10%, hard <= 20%
  beta to the index        |126-day beta of daily returns|                  soft <= 0.3, hard <= 0.4
  sector exposure          largest |63-day mean net weight in one sector|   soft <= 20%, hard <= 25%
  style exposure           largest |63-day mean style exposure|             soft <= 40%, hard <= 50%
  tradable universe        share of gross exposure in liquid stocks         soft >= 95%, hard >= 90%
  positive return          total return over the run                        > 0

Style exposure of a portfolio to a style = sum over holdings of weight x the holding's
cross-sectional z-score (against the index members that day, clipped at +-3) of:
  momentum              total return over the 252 trading days ending 21 days ago (12-1)
  size                  log market capitalisation
  value                 log(book equity / market capitalisation), book equity as publicly known
  short-term reversal   minus the total return over the last 21 trading days
  volatility            standard deviation of daily total returns over the last 63 days
Liquid ("tradable") stocks: market cap >= 500 million and median daily dollar volume over the last
63 days >= 2.5 million, and a price of at least 5.

Score: the sum over days of (daily return / max(annualised volatility of the trailing 63 daily
returns, 2%)). The contest needs two years of data; a shorter run is flagged.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from .metrics import DAYS_PER_YEAR
from .trading import by_day

SOFT_BREACH_SHARE = 0.02
MIN_DAYS = 2 * DAYS_PER_YEAR
STYLES = ("momentum", "size", "value", "short_term_reversal", "volatility")
# name -> (soft low, soft high, hard low, hard high); None = unbounded
LIMITS = {
    "position_concentration": (None, 0.05, None, 0.10),
    "gross_leverage": (0.8, 1.1, 0.7, 1.2),
    "turnover": (0.05, 0.65, 0.03, 0.80),
    "net_exposure": (None, 0.10, None, 0.20),
    "beta_to_index": (None, 0.30, None, 0.40),
    "sector_exposure": (None, 0.20, None, 0.25),
    "style_exposure": (None, 0.40, None, 0.50),
    "tradable_universe": (0.95, None, 0.90, None),
}


@dataclasses.dataclass
class ContestInputs:
    """Everything the checks need, aligned on the run's trading days."""

    returns: pd.Series  # daily portfolio returns
    benchmark: pd.Series  # daily index returns
    weights: pd.DataFrame  # days x tickers: signed weight in equity (0 when not held)
    turnover: pd.Series  # daily one-way turnover
    sectors: pd.Series  # ticker -> sector
    styles: dict[str, pd.DataFrame] | None = None  # style -> days x tickers z-scores
    liquid: pd.DataFrame | None = None  # days x tickers: True when in the tradable universe


SKIP_DAYS = 5  # the contest measured from a strategy's sixth day: day 1 is all cash


def daily_measures(x: ContestInputs) -> pd.DataFrame:
    """One column per constraint, one row per day from the sixth on (the contest's first five
    days, spent getting invested, are not held against a strategy; NaN where a measure cannot
    be computed yet)."""
    w = x.weights
    out = pd.DataFrame(index=w.index)
    out["position_concentration"] = w.abs().max(axis=1)
    out["gross_leverage"] = w.abs().sum(axis=1)
    out["turnover"] = x.turnover.rolling(63).mean()
    out["net_exposure"] = w.sum(axis=1).abs()
    r, b = x.returns, x.benchmark
    out["beta_to_index"] = (r.rolling(126).cov(b) / b.rolling(126).var()).abs()
    sector_net = w.T.groupby(x.sectors.reindex(w.columns).fillna("Unknown")).sum().T
    out["sector_exposure"] = sector_net.rolling(63).mean().abs().max(axis=1)
    if x.styles:
        exposure = pd.DataFrame(
            {s: (w * z.reindex_like(w).fillna(0.0)).sum(axis=1) for s, z in x.styles.items()}
        )
        out["style_exposure"] = exposure.rolling(63).mean().abs().max(axis=1)
    else:
        out["style_exposure"] = np.nan
    if x.liquid is not None:
        gross = w.abs().sum(axis=1)
        inside = (w.abs() * x.liquid.reindex_like(w).fillna(False)).sum(axis=1)
        out["tradable_universe"] = (inside / gross).where(gross > 0)
    else:
        out["tradable_universe"] = np.nan
    return out.iloc[SKIP_DAYS:]


def score(returns: pd.Series) -> float:
    """Sum of daily returns, each divided by max(trailing 63-day annualised volatility, 2%)."""
    vol = returns.rolling(63).std().shift(1) * np.sqrt(DAYS_PER_YEAR)
    return float((returns / vol.clip(lower=0.02)).dropna().sum())


def _outside(values: pd.Series, low, high) -> pd.Series:
    bad = pd.Series(False, index=values.index)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    return bad


def check(x: ContestInputs) -> tuple[pd.DataFrame, dict]:
    """The PASS/FAIL table (one row per constraint) and a summary with the score."""
    measures = daily_measures(x)
    rows = []
    for name, (slo, shi, hlo, hhi) in LIMITS.items():
        values = measures[name].dropna()
        if values.empty:
            rows.append(
                {
                    "constraint": name,
                    "result": "NOT MEASURED",
                    "days": 0,
                    "mean": None,
                    "worst": None,
                    "days_outside_soft": None,
                    "days_outside_hard": None,
                    "soft_limit": _limit(slo, shi),
                    "hard_limit": _limit(hlo, hhi),
                }
            )
            continue
        soft = _outside(values, slo, shi)
        hard = _outside(values, hlo, hhi)
        # the value furthest outside the soft range (or closest to leaving it)
        excess = np.maximum(
            (slo - values) if slo is not None else -np.inf,
            (values - shi) if shi is not None else -np.inf,
        )
        worst = values.iloc[int(np.argmax(excess.to_numpy()))]
        passed = soft.mean() <= SOFT_BREACH_SHARE and not hard.any()
        rows.append(
            {
                "constraint": name,
                "result": "PASS" if passed else "FAIL",
                "days": int(len(values)),
                "mean": float(values.mean()),
                "worst": float(worst),
                "days_outside_soft": float(soft.mean()),
                "days_outside_hard": float(hard.mean()),
                "soft_limit": _limit(slo, shi),
                "hard_limit": _limit(hlo, hhi),
            }
        )
    total = float(np.prod(1 + x.returns.to_numpy()) - 1)
    rows.append(
        {
            "constraint": "positive_return",
            "result": "PASS" if total > 0 else "FAIL",
            "days": len(x.returns),
            "mean": None,
            "worst": total,
            "days_outside_soft": None,
            "days_outside_hard": None,
            "soft_limit": "> 0",
            "hard_limit": "> 0",
        }
    )
    table = pd.DataFrame(rows)
    enough = len(x.returns) >= MIN_DAYS
    measured = table[table["result"] != "NOT MEASURED"]
    summary = {
        "score": score(x.returns),
        "all_pass": bool((measured["result"] == "PASS").all()) and enough,
        "days": int(len(x.returns)),
        "note": ""
        if enough
        else (
            f"the contest needs two years of data ({MIN_DAYS} trading days); this run "
            f"has {len(x.returns)}"
        ),
    }
    return table, summary


def _limit(low, high) -> str:
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"{low:g} to {high:g}"


def style_scores(
    total_return: np.ndarray, market_cap: np.ndarray, book: np.ndarray, members: np.ndarray
) -> dict[str, np.ndarray]:
    """Daily cross-sectional z-scores of the five styles (T x N arrays), computed among members."""
    tr = np.nan_to_num(total_return)
    log_wealth = np.cumsum(np.log1p(np.clip(tr, -0.999, None)), axis=0)

    def back(k: int) -> np.ndarray:
        out = np.full_like(log_wealth, np.nan)
        out[k:] = log_wealth[:-k]
        return out

    raw = {
        "momentum": back(21) - back(252),
        "size": np.log(np.where(market_cap > 0, market_cap, np.nan)),
        "value": np.log(
            np.where(
                (book > 0) & (market_cap > 0),
                book / np.where(market_cap > 0, market_cap, 1),
                np.nan,
            )
        ),
        "short_term_reversal": -(log_wealth - back(21)),
        "volatility": pd.DataFrame(total_return).rolling(63, min_periods=20).std().to_numpy(),
    }
    out = {}
    for name, values in raw.items():
        v = np.where(members, values, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # days with no members yet
            mu = np.nanmean(v, axis=1, keepdims=True)
            sd = np.nanstd(v, axis=1, keepdims=True)
            z = (values - mu) / np.where(sd > 0, sd, np.nan)
        out[name] = np.clip(np.nan_to_num(z), -3.0, 3.0)
    return out


HELD_COLUMNS = (*STYLES, "liquid")


def held_inputs(panel, positions: pd.DataFrame) -> pd.DataFrame:
    """For every row of a run's positions (a ticker held on a day): its five style z-scores and
    whether it was in the liquid universe. 03 stores this in the archive (contest_inputs.feather),
    so 04 can check a run's contest rules from the run folder alone."""
    days = panel.dates.get_indexer(pd.DatetimeIndex(positions["date"]))
    cols = panel.labels.get_indexer(positions["ticker"].astype(str))
    styles, liquid = _style_and_liquidity(panel)
    out = pd.DataFrame({"date": positions["date"].to_numpy(), "ticker": positions["ticker"]})
    for name, values in styles.items():
        out[name] = values[days, cols]
    out["liquid"] = liquid[days, cols]
    return out


def inputs_from_archive(
    held: pd.DataFrame, returns, benchmark, positions, turnover, sectors
) -> ContestInputs:
    """Contest inputs from a run folder: weights from its positions, styles and liquidity from
    its contest_inputs.feather."""
    weights = by_day(positions, "weight", returns.index)
    held = held.assign(ticker=held["ticker"].astype(str))

    def table(col):
        wide = held.pivot_table(index="date", columns="ticker", values=col, aggfunc="first")
        return wide.reindex(index=returns.index, columns=weights.columns)

    return ContestInputs(
        returns,
        benchmark,
        weights,
        turnover,
        sectors,
        {s: table(s).fillna(0.0) for s in STYLES},
        table("liquid").fillna(0.0).astype(bool),
    )


def _style_and_liquidity(panel) -> tuple[dict[str, np.ndarray], np.ndarray]:
    book = np.full(panel.mark.shape, np.nan)
    if "total_equity" in panel.fundamentals:
        f = panel.fundamentals["total_equity"]
        ok = f.public_day < len(panel.dates)
        book[f.public_day[ok], f.ticker[ok]] = f.value[ok]
        book = pd.DataFrame(book).ffill().to_numpy()
    members = panel.membership[np.maximum(panel.list_of_day, 0)] & (panel.list_of_day >= 0)[:, None]
    members &= np.isfinite(panel.mark)
    cap = pd.DataFrame(panel.fields["market_cap"]).ffill().to_numpy()
    styles = style_scores(panel.total_return, cap, book, members)
    return styles, liquid_universe(panel.mark, panel.fields["volume"], cap)


def liquid_universe(close: np.ndarray, volume: np.ndarray, market_cap: np.ndarray) -> np.ndarray:
    """T x N bool: market cap >= 500m, 63-day median dollar volume >= 2.5m, price >= 5."""
    dollar = pd.DataFrame(close * volume).rolling(63, min_periods=20).median().to_numpy()
    with np.errstate(invalid="ignore"):
        return (market_cap >= 5e8) & (dollar >= 2.5e6) & (close >= 5)
