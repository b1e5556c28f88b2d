"""The market factor: planted episodes (corrections, bear markets, a crash, recoveries) on a
calm upward drift, with GARCH-like volatility clustering."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .settings import (
    BEAR,
    CALM,
    CORRECTION,
    CRASH,
    HIGH_VOLATILITY,
    MARKET_GROWTH,
    RECOVERY,
    REGIME_VOL,
    TRADING_DAYS,
)


def _episodes(rng: np.random.Generator, T: int) -> list[tuple[int, int, str, float]]:
    """Planted market episodes (first day, day after the last, regime, log move over the
    episode): one bear market (a 36-44% fall over 6-14 months, then a recovery of about half the
    loss), in half the histories a sharp crash (28-36% in 1-2 months, mostly recovered within
    months), and a correction (10-16% over 1-3 months) every four years or so. None overlap.
    Lengths shrink with a short history so that everything fits."""
    fit = min(1.0, T / 2500)
    taken: list[tuple[int, int]] = []

    def place(length: int, lo: float, hi: float, gap: int = 40) -> int | None:
        for _ in range(200):
            a = int(rng.integers(int(lo * T), max(int(hi * T) - length, int(lo * T) + 1)))
            if a + length <= T and all(a + length + gap <= s or a >= e + gap for s, e in taken):
                taken.append((a, a + length))
                return a
        return None

    out = []
    fall = int(rng.integers(130, 300) * fit)
    rise = int(rng.integers(150, 300) * fit)
    depth = np.log(1 - rng.uniform(0.36, 0.44))
    a = place(fall + rise, 0.1, 0.8)
    if a is not None:
        out += [(a, a + fall, BEAR, depth), (a + fall, a + fall + rise, RECOVERY, -0.5 * depth)]
    if rng.random() < 0.5:
        fall, rise = int(rng.integers(22, 45)), int(rng.integers(60, 150) * fit)
        depth = np.log(1 - rng.uniform(0.28, 0.36))
        a = place(fall + rise, 0.05, 1.0, gap=int(500 * fit))
        if a is not None:
            out += [
                (a, a + fall, CRASH, depth),
                (a + fall, a + fall + rise, RECOVERY, -0.7 * depth),
            ]
    for _ in range(max(1, round(T / 1000))):
        fall = int(rng.integers(20, 60))
        a = place(fall, 0.0, 1.0)
        if a is not None:
            out.append((a, a + fall, CORRECTION, np.log(1 - rng.uniform(0.10, 0.16))))
    return sorted(out)


def _market_returns(
    rng: np.random.Generator, calendar: pd.DatetimeIndex
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Daily market-factor returns: planted episodes (see _episodes) on a calm upward drift, with
    GARCH(1,1) volatility on Student-t shocks (fat tails, volatility clustering).

    The noise is demeaned within each episode and over the calm days, so each episode's move and
    the history's log growth are exactly what is planted (MARKET_GROWTH a year), not luck.
    Returns (returns, in_stress, regimes): in_stress is True on bear-market and crash days;
    regimes lists every episode and high-volatility spell (start, end, regime, market move)."""
    T = len(calendar)
    episodes = _episodes(rng, T)
    kind = np.full(T, CALM, dtype=object)
    drift = np.zeros(T)
    for a, b, name, move in episodes:
        kind[a:b] = name
        drift[a:b] = move / (b - a)
    calm = kind == CALM
    drift[calm] = (MARKET_GROWTH * T / TRADING_DAYS - drift.sum()) / max(int(calm.sum()), 1)
    base = np.array([REGIME_VOL[k] for k in kind]) / np.sqrt(TRADING_DAYS)
    dof = 5.0
    shocks = rng.standard_t(dof, T) / np.sqrt(dof / (dof - 2.0))
    g2 = np.ones(T)
    a_, b_ = 0.08, 0.90  # GARCH(1,1) on a unit variance: g2 = (1-a-b) + a*shock^2 + b*g2
    for t in range(1, T):
        g2[t] = (1 - a_ - b_) + a_ * shocks[t - 1] ** 2 + b_ * g2[t - 1]
    sigma = base * np.sqrt(g2)
    noise = sigma * shocks
    for a, b, _, _ in episodes:  # each episode moves the market by exactly what it plants
        noise[a:b] -= noise[a:b].mean()
    noise[calm] -= noise[calm].mean()
    log_r = drift + noise
    r = np.expm1(log_r)
    rows = [
        (calendar[a], calendar[b - 1], name, float(np.expm1(log_r[a:b].sum())))
        for a, b, name, _ in episodes
    ]
    annual = pd.Series(sigma * np.sqrt(TRADING_DAYS)).rolling(10, center=True).mean().to_numpy()
    high = np.r_[False, annual > HIGH_VOLATILITY, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(high))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= 10:
            rows.append(
                (calendar[a], calendar[b - 1], "high volatility", float(np.expm1(log_r[a:b].sum())))
            )
    regimes = pd.DataFrame(rows, columns=["start", "end", "regime", "market_return"])
    regimes = regimes.sort_values(["start", "regime"], kind="stable").reset_index(drop=True)
    in_stress = np.isin(kind, [BEAR, CRASH])
    return r, in_stress, regimes
