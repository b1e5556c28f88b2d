"""The simulated vendor (D2): a seeded random equity market that never depends on today's date.

What it plants, so that later stages and tests can check they recover it:
- sessions of a real exchange (NYSE by default, through exchange_calendars);
- market episodes (a bear market and its recovery, sometimes a crash, corrections) on a calm
  drift, with GARCH volatility on Student-t shocks; the episodes and high-volatility spells are
  logged (market_regimes) so that the tear sheet can name them;
- sector factors, firm betas and idiosyncratic volatilities that fall with a firm's size, and net
  share issuance that shrinks the largest firms' share counts (no stock takes over the index);
- factor premia in expected returns, set each month from what the firm's books and prices say:
  value (book-to-market), quality (return on assets), 12-1 momentum, and low volatility;
- IPOs, takeovers (paid in cash at a premium) and bankruptcies (a slide, then a small or zero
  recovery), so an index of the top N by market cap (reviewed quarterly with a rank buffer)
  churns and delisted names matter;
- splits when a price runs high, quarterly dividends for payers, realistic daily volume;
- quarterly fundamentals whose announcement date falls 20-50 days after the quarter end.

All randomness comes from one numpy Generator seeded by `seed`; the calendar from `start`, `end`
and the exchange. The calibration (the module's constants) is measured by
`python -m equity_backtest.data.vendors.realism` against large-cap ranges.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...infra import heap
from .. import calendars
from ..datalog import LogName, quote, render_log, render_logs, write_logs_bytes
from ..vocabulary import MARKET_FIELDS

log = logging.getLogger(__name__)

SOURCE = "simulated"
SECTORS = (
    ("Information Technology", 0.14),
    ("Health Care", 0.12),
    ("Financials", 0.12),
    ("Consumer Discretionary", 0.11),
    ("Industrials", 0.12),
    ("Communication Services", 0.06),
    ("Consumer Staples", 0.07),
    ("Energy", 0.06),
    ("Utilities", 0.06),
    ("Real Estate", 0.06),
    ("Materials", 0.08),
)
FUNDAMENTAL_METRICS = (
    "revenue",
    "ebit",
    "net_income",
    "total_assets",
    "total_equity",
    "total_debt",
    "cash",
    "current_assets",
    "current_liabilities",
    "net_fixed_assets",
    "shares_outstanding",
    "operating_cash_flow",
    "capex",
    "gross_profit",
)
# Annual expected-return premium per cross-sectional z-score (top minus bottom quintile ~2.8x this).
PREMIA = {"value": 0.04, "quality": 0.025, "momentum": 0.03, "low_volatility": 0.02}
SIZE_VOL_ELASTICITY = 0.5  # idiosyncratic volatility ~ (market cap / median cap) ** -0.5
PREMIUM_Z_CLIP = 2.0  # characteristics beyond two standard deviations earn no more
BOOK_ANCHOR_SPEED = 0.6  # share of the gap to the firm's target book-to-market closed a quarter
TRADING_DAYS = 252
# Spread of log market caps at listing, and net issuance a year per cross-sectional z-score of log
# size (small firms issue shares, large ones buy back): together they keep a large-cap index from
# concentrating into a few names over decades (calibrated with python -m equity_backtest.data.vendors.realism).
INITIAL_SIZE_SPREAD = 0.7
NET_ISSUANCE = 0.09
SIZE_Z_CLIP = 6.0  # (z-scores of log size; outliers buy back the most)
INDEX_BUFFER = 0.3  # rank buffer of the index rule at quarterly reviews (see _index_members)
_NAME_A = (
    "Ar",
    "Bel",
    "Cor",
    "Dal",
    "Ev",
    "Fal",
    "Gor",
    "Hal",
    "Ist",
    "Jor",
    "Kel",
    "Lum",
    "Mar",
    "Nor",
    "Or",
    "Pel",
    "Quin",
    "Ros",
    "Sol",
    "Tor",
    "Ul",
    "Ver",
    "Wes",
    "Xan",
    "Yor",
    "Zen",
)
_NAME_B = ("ada", "ex", "ion", "ora", "ant", "ix", "on", "is", "ara", "um", "ent", "ora", "yx")
_NAME_C = (
    "Holdings",
    "Group",
    "Corp",
    "Industries",
    "Systems",
    "Partners",
    "Technologies",
    "Resources",
    "Brands",
    "Labs",
)


@dataclasses.dataclass(frozen=True)
class SimulationSettings:
    """What determines the simulated market: same settings, same market, byte for byte."""

    n_tickers: int = 300
    index_size: int = 100
    start: dt.date = dt.date(2005, 1, 1)
    end: dt.date = dt.date(2024, 12, 31)
    seed: int = 42
    calendar: str = "XNYS"  # the exchange whose sessions the market trades on (exchange_calendars)

    @property
    def index_name(self) -> str:
        return f"TOP{self.index_size}"


@dataclasses.dataclass
class SimulatedMarket:
    """The generated market as vendor-shaped tables, plus the ground truth that tests check."""

    settings: SimulationSettings
    calendar: pd.DatetimeIndex
    metadata: pd.DataFrame
    prices: pd.DataFrame
    fundamentals: pd.DataFrame
    corporate_actions: pd.DataFrame
    constituents: pd.DataFrame
    events: pd.DataFrame  # ground truth: ipo / takeover / bankruptcy / market episodes, with dates
    regimes: pd.DataFrame  # the market's episodes and high-volatility spells (start, end, regime)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The market as a dataset version's tables (what 02 would build from its logs, before
        the datalog's quoting), so a panel can be built in memory."""
        fund = self.fundamentals.melt(
            id_vars=["ticker", "period_end", "announcement_date"], var_name="metric"
        )
        tables = {
            "market": self.prices,
            "fundamentals": fund,
            "constituents": self.constituents,
            "metadata": self.metadata.astype(str),
            "corporate_actions": self.corporate_actions,
            "regimes": self.regimes,
        }
        return {k: v.assign(source=SOURCE, log_ts=0) for k, v in tables.items()}


def trading_calendar(start: dt.date, end: dt.date, exchange: str = "XNYS") -> pd.DatetimeIndex:
    """The exchange's sessions between start and end (holidays and special closures excluded)."""
    return calendars.sessions(exchange, start, end)


def _tickers(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    seen: set[str] = set()
    out = []
    while len(out) < n:
        k = int(rng.choice([3, 4], p=[0.4, 0.6]))
        t = "".join(rng.choice(letters, size=k))
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


# Market regimes (annualised volatility of the market factor before GARCH scaling).
CALM, CORRECTION, BEAR, CRASH, RECOVERY = "calm", "correction", "bear market", "crash", "recovery"
REGIME_VOL = {CALM: 0.13, CORRECTION: 0.20, BEAR: 0.28, CRASH: 0.45, RECOVERY: 0.20}
# Long-run log growth of the market factor a year (the planted equity return, before premia).
MARKET_GROWTH = 0.07
HIGH_VOLATILITY = 0.30  # a spell of at least 10 days above this annualised volatility is recorded


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


def _zscore(x: np.ndarray, mask: np.ndarray, clip: float = 3.0) -> np.ndarray:
    z = np.zeros_like(x)
    v = x[mask]
    ok = np.isfinite(v)
    if ok.sum() > 2:
        mu, sd = v[ok].mean(), v[ok].std()
        z[mask] = np.where(ok, (v - mu) / (sd if sd > 0 else 1.0), 0.0)
    return np.clip(z, -clip, clip)


def _larger(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Python's max(a, b) value by value (a unless b is greater)."""
    return np.where(b > a, b, a)


def _smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Python's min(a, b) value by value (a unless b is smaller)."""
    return np.where(b < a, b, a)


def simulate(settings: SimulationSettings, progress: bool = False) -> SimulatedMarket:
    """Generate the whole market day by day (O(days x tickers) numpy work, a few seconds)."""
    rng = np.random.default_rng(settings.seed)
    cal = trading_calendar(settings.start, settings.end, settings.calendar)
    half_day = cal.isin(calendars.early_closes(settings.calendar, settings.start, settings.end))
    T, N = len(cal), settings.n_tickers
    if T < 260:
        raise ValueError("the simulated market needs at least about a year of trading days")

    # --- static firm characteristics ---------------------------------------------------------
    tickers = _tickers(rng, N)
    sector_names = [s for s, _ in SECTORS]
    sector_p = np.array([p for _, p in SECTORS])
    sector = rng.choice(len(SECTORS), size=N, p=sector_p / sector_p.sum())
    names = [
        f"{_NAME_A[rng.integers(len(_NAME_A))]}{_NAME_B[rng.integers(len(_NAME_B))]} "
        f"{_NAME_C[rng.integers(len(_NAME_C))]}"
        for _ in range(N)
    ]
    ipo_day = np.where(rng.random(N) < 0.6, 0, rng.integers(1, int(0.95 * T), size=N))
    beta = np.clip(rng.normal(1.0, 0.3, N), 0.3, 2.0)
    idio_vol = np.clip(np.exp(rng.normal(np.log(0.25), 0.35, N)), 0.10, 0.70)
    roa_level = rng.normal(0.05, 0.05, N)
    bm_target = np.exp(rng.normal(np.log(0.5), 0.6, N))
    turnover = np.exp(rng.normal(np.log(0.006), 0.5, N))
    payer = rng.random(N) < 0.45
    payout = rng.uniform(0.2, 0.6, N)
    asset_turnover = rng.uniform(0.4, 1.5, N)
    lev = rng.uniform(0.05, 0.45, N)
    eq_ratio = np.clip(1.0 - lev - rng.uniform(0.1, 0.3, N), 0.15, 0.8)
    cash_ratio = rng.uniform(0.03, 0.15, N)
    ca_ratio = cash_ratio + rng.uniform(0.15, 0.35, N)
    cl_ratio = rng.uniform(0.1, 0.3, N)
    nfa_ratio = rng.uniform(0.1, 0.6, N)
    capex_ratio = rng.uniform(0.02, 0.08, N)
    # overheads (SG&A) as a share of assets, from a child stream so the main stream is unchanged:
    # gross profit = EBIT + overheads, so gross profitability follows the planted quality
    overhead_ratio = np.random.default_rng([settings.seed, 1]).uniform(0.02, 0.10, N)

    # --- shocks drawn up front (deterministic whatever the loop does) -----------------------
    m_ret, in_stress, regimes = _market_returns(rng, cal)
    sector_ret = 0.08 / np.sqrt(TRADING_DAYS) * rng.standard_normal((T, len(SECTORS)))
    eps = rng.standard_normal((T, N))
    gap_eps = rng.standard_normal((T, N))
    hl_eps = rng.standard_normal((T, 2, N))
    np.abs(hl_eps, out=hl_eps)
    vol_eps = rng.standard_normal((T, N))

    month_start = np.r_[True, cal.month[1:] != cal.month[:-1]]
    quarter_end = np.r_[cal.quarter[1:] != cal.quarter[:-1], False] | (np.arange(T) == T - 1) & (
        (cal[-1] + pd.offsets.BDay(1)).quarter != cal[-1].quarter
    )
    quarter_start = month_start & np.r_[True, cal.quarter[1:] != cal.quarter[:-1]]
    sd_daily = idio_vol / np.sqrt(TRADING_DAYS)

    # --- state ---------------------------------------------------------------------------------
    status = np.zeros(N, dtype=np.int8)  # 0 not listed yet, 1 trading, 2 delisted
    price = np.full(N, np.nan)
    shares = np.zeros(N)
    tri = np.ones(N)  # total-return index, for momentum
    tri_month: list[np.ndarray] = []
    alpha = np.zeros(N)
    roa = roa_level.copy()
    scale = np.zeros(N)  # total assets
    days_left = np.full(N, -1)  # trading days until delisting (>= 0 once a delisting is set)
    delist_kind = np.zeros(N, dtype=np.int8)  # 1 bankruptcy, 2 takeover
    delist_value = np.zeros(N)
    div_day = np.full(N, -1)
    div_amount = np.zeros(N)

    # each day's quotes (NaN where a name does not trade) are written over that day's spent
    # shocks, so five of the six day-by-ticker arrays of quotes cost no memory of their own
    out = {"open": gap_eps, "high": hl_eps[:, 0], "low": hl_eps[:, 1], "close": eps}
    out |= {"volume": vol_eps, "market_cap": np.empty((T, N))}
    actions: list[tuple[int, int, str, float]] = []
    fundamentals: list[dict[str, np.ndarray]] = []  # a quarter's reports, column by column
    constituents: list[tuple[int, np.ndarray, np.ndarray]] = []  # (day, members, weights)
    events: list[tuple] = []
    for row in regimes[regimes["regime"] != "high volatility"].itertuples():
        events.append(("", row.start, row.regime, float((row.end - row.start).days)))
    members = np.zeros(N, dtype=bool)  # the index's members (its last list)

    for t in tqdm(
        range(T), desc="simulating market", unit="day", disable=not progress, leave=False
    ):
        # IPOs at the start of the day
        new = (ipo_day == t) & (status == 0)
        if new.any():
            k = int(new.sum())
            price[new] = rng.uniform(10, 60, k)
            mcap0 = np.exp(rng.normal(np.log(4e9 if t == 0 else 1.5e9), INITIAL_SIZE_SPREAD, k))
            shares[new] = np.round(mcap0 / price[new])
            scale[new] = mcap0 * bm_target[new] / eq_ratio[new]
            status[new] = 1
            if t > 0:
                events.extend(
                    (tickers[i], cal[t], "ipo", float(price[i])) for i in np.flatnonzero(new)
                )
        live = status == 1
        prev = price.copy()

        if month_start[t]:
            tri_month.append(tri.copy())
            # planted premia from what the books and prices say now
            mcap = price * shares
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.log(scale * eq_ratio / mcap)
                mom = (
                    np.log(tri_month[-2] / tri_month[-13]) if len(tri_month) >= 13 else np.zeros(N)
                )
            # large firms are steadier: idiosyncratic volatility falls with relative size
            with np.errstate(divide="ignore", invalid="ignore"):
                relative = np.clip(mcap / np.nanmedian(np.where(live, mcap, np.nan)), 0.3, 50)
            vol_now = np.where(
                live, np.minimum(idio_vol * relative**-SIZE_VOL_ELASTICITY, 0.8), idio_vol
            )
            sd_daily = vol_now / np.sqrt(TRADING_DAYS)
            tot_vol = np.sqrt((beta * 0.16) ** 2 + vol_now**2)
            c = PREMIUM_Z_CLIP
            alpha = (
                PREMIA["value"] * _zscore(value, live, c)
                + PREMIA["quality"] * _zscore(roa, live, c)
                + PREMIA["momentum"] * _zscore(mom, live, c)
                - PREMIA["low_volatility"] * _zscore(tot_vol, live, c)
            )
            # premia are relative: the cap-weighted market earns the market's return, no more
            cap_w = np.where(live, np.nan_to_num(mcap), 0.0)
            alpha = np.where(live, alpha - (alpha * cap_w).sum() / cap_w.sum(), 0.0)
            # delisting hazards (monthly), only for names not already on their way out
            free = live & (days_left < 0)
            stress = 3.0 if in_stress[t] else 1.0
            p_bankrupt = np.clip(0.0012 * np.exp(-30.0 * roa) * stress, 0, 0.2)
            bankrupt = free & (rng.random(N) < p_bankrupt)
            takeover = free & ~bankrupt & (rng.random(N) < 0.0015)
            for i in np.flatnonzero(bankrupt):
                days_left[i], delist_kind[i] = int(rng.integers(15, 30)), 1
                delist_value[i] = 0.0 if rng.random() < 0.5 else rng.uniform(0.01, 0.15)
            for i in np.flatnonzero(takeover):
                days_left[i], delist_kind[i] = int(rng.integers(20, 60)), 2
                delist_value[i] = price[i] * rng.uniform(1.15, 1.5)  # the deal price per share
            # net issuance: small firms issue shares, large ones buy theirs back, so relative
            # size mean-reverts through the share count (holders' returns are untouched)
            with np.errstate(divide="ignore", invalid="ignore"):
                size_z = _zscore(np.log(mcap), live, SIZE_Z_CLIP)
            shares = np.where(live, shares * np.exp(-NET_ISSUANCE * size_z / 12), shares)
            # splits when the price has run high: effective today, before the open
            split = live & (price > 120) & (days_left < 0) & (rng.random(N) < 0.5)
            for i in np.flatnonzero(split):
                ratio = float(rng.choice([2, 3, 4], p=[0.7, 0.2, 0.1]))
                prev[i] /= ratio
                price[i] /= ratio
                shares[i] *= ratio
                div_amount[i] /= ratio
                actions.append((t, i, "split", ratio))

        # daily total returns
        r = alpha / TRADING_DAYS + beta * m_ret[t] + sector_ret[t, sector] + sd_daily * eps[t]
        slide = live & (delist_kind == 1)
        r[slide] = -0.08 + 0.03 * eps[t, slide]
        deal = live & (delist_kind == 2)
        if deal.any():
            target = delist_value * 0.985
            # announcement day: jump to just under the deal price; then trade tightly around it
            gap = target[deal] / prev[deal] - 1.0
            r[deal] = np.where(
                prev[deal] < 0.9 * target[deal], gap, 0.5 * gap + 0.002 * eps[t, deal]
            )
        r = np.maximum(r, -0.9)
        tri = np.where(live, tri * (1.0 + r), tri)
        dividend = np.where(live & (div_day == t), div_amount, 0.0)
        close = prev * (1.0 + r) - dividend
        close = np.maximum(close, 0.01)
        open_ = (prev - dividend) * np.exp(0.25 * np.log1p(r) + 0.3 * sd_daily * gap_eps[t])
        open_ = np.maximum(open_, 0.01)
        high = np.maximum(open_, close) * (1.0 + 0.5 * sd_daily * hl_eps[t, 0])
        low = np.maximum(np.minimum(open_, close) * (1.0 - 0.5 * sd_daily * hl_eps[t, 1]), 0.005)
        vol = np.round(
            shares
            * turnover
            * np.exp(0.4 * vol_eps[t])
            * (1.0 + 15.0 * np.abs(r))
            * (0.55 if half_day[t] else 1.0)
        )
        for i in np.flatnonzero(dividend > 0):
            actions.append((t, i, "dividend", float(dividend[i])))
            div_day[i] = -1

        price = np.where(live, close, price)
        for key, arr in (
            ("open", open_),
            ("high", high),
            ("low", low),
            ("close", close),
            ("volume", vol),
            ("market_cap", close * shares),
        ):
            out[key][t] = np.where(live, arr, np.nan)  # (after the day's last use of its shocks)

        # quarterly books (period end = calendar quarter end), announced 20-50 days later
        if quarter_end[t]:
            period_end = (cal[t] + pd.offsets.QuarterEnd(0)).normalize()
            idx = np.flatnonzero(live)
            mcap = price[idx] * shares[idx]
            anchor = np.log(mcap * bm_target[idx] / eq_ratio[idx])
            # book value tracks the firm's target book-to-market quickly, with its own noise, so
            # value is a characteristic of the firm rather than a mirror of recent returns
            scale[idx] = np.exp(
                np.log(scale[idx])
                + BOOK_ANCHOR_SPEED * (anchor - np.log(scale[idx]))
                + rng.normal(0.0, 0.05, len(idx))
            )
            roa[idx] = 0.8 * roa[idx] + 0.2 * roa_level[idx] + rng.normal(0, 0.01, len(idx))
            s = scale[idx]
            ni = roa[idx] * s / 4
            interest = 0.05 * lev[idx] * s / 4
            lag = rng.integers(20, 51, len(idx))
            rev = s * asset_turnover[idx] / 4 * np.exp(rng.normal(0, 0.03, len(idx)))
            cash = s * cash_ratio[idx] * np.exp(rng.normal(0, 0.1, len(idx)))
            ocf = ni + 0.01 * s + rng.normal(0, 0.005, len(idx)) * s
            announced = period_end + pd.to_timedelta(lag, unit="D")
            ebit = ni / 0.75 + interest
            fundamentals.append(
                {
                    "i": idx,
                    "period_end": np.repeat(period_end.to_datetime64(), len(idx)),
                    "announcement_date": announced.values,
                    "revenue": rev,
                    "ebit": ebit,
                    "net_income": ni,
                    "total_assets": s,
                    "total_equity": s * eq_ratio[idx],
                    "total_debt": s * lev[idx],
                    "cash": cash,
                    "current_assets": _larger(s * ca_ratio[idx], cash),
                    "current_liabilities": s * cl_ratio[idx],
                    "net_fixed_assets": s * nfa_ratio[idx],
                    "shares_outstanding": shares[idx],
                    "operating_cash_flow": ocf,
                    "capex": s * capex_ratio[idx] / 4,
                    "gross_profit": ebit + s * overhead_ratio[idx] / 4,
                }
            )
            # payers that earned money go ex-dividend on the trading day 14 days after the news
            ex = np.searchsorted(cal.values, (announced + pd.Timedelta(days=14)).values)
            pays = payer[idx] & (ni > 0) & (days_left[idx] < 0) & (ex < T)
            div_day[idx[pays]] = ex[pays]
            div_amount[idx[pays]] = _smaller(payout[idx] * ni / shares[idx], 0.2 * price[idx])[pays]

        # index list at the close of the first trading day of each month (see _index_members)
        if month_start[t]:
            eligible = live & (days_left != 0)
            caps = np.where(eligible, price * shares, -np.inf)
            members = _index_members(caps, members, settings.index_size, quarter_start[t])
            top = np.flatnonzero(members)
            constituents.append((t, top, caps[top] / caps[top].sum()))

        # countdown to delisting: the day after the last trading day, holders get the value
        on_way = live & (days_left >= 0)
        for i in np.flatnonzero(on_way & (days_left == 0)):
            status[i] = 2
            if t + 1 < T:
                kind = "bankruptcy" if delist_kind[i] == 1 else "takeover"
                value = (
                    float(delist_value[i] * price[i])
                    if kind == "bankruptcy"
                    else float(delist_value[i])
                )
                actions.append((t + 1, i, "delisting", value))
                events.append((tickers[i], cal[t + 1], kind, value))
        days_left[on_way] -= 1

    meta = pd.DataFrame(
        {
            "ticker": tickers,
            "name": names,
            "sector": [sector_names[s] for s in sector],
            "isin": [f"ZZ{i:09d}{i % 10}" for i in range(N)],
            "currency": "USD",
            "listing_date": [cal[int(d)] for d in ipo_day],
            "exchange": settings.calendar,
        }
    )
    del eps, gap_eps, hl_eps, vol_eps  # (the shocks are spent: memory for the tables)
    return _assemble(settings, cal, meta, out, actions, fundamentals, constituents, events, regimes)


def _index_members(caps: np.ndarray, members: np.ndarray, size: int, review: bool) -> np.ndarray:
    """The index's members after a list day, by market cap with a buffer, as index providers do.

    At a quarterly review a member stays while it ranks within the top size x (1 + BUFFER), and a
    non-member joins when it ranks within the top size x (1 - BUFFER); the list is then filled or
    cut by rank to `size`. Between reviews only a member that is gone (delisted or about to be) is
    replaced, by the largest non-member. Names with caps of -inf are not eligible."""
    n_eligible = int(np.isfinite(caps).sum())
    size = min(size, n_eligible)
    order = np.argsort(-caps, kind="stable")
    rank = np.empty(len(caps), dtype=np.int64)
    rank[order] = np.arange(len(caps))
    keep = members & np.isfinite(caps)
    if review or not members.any():
        keep &= rank < size * (1 + INDEX_BUFFER)
        keep |= rank < size * (1 - INDEX_BUFFER)
    chosen = order[keep[order]][:size]  # by rank, at most size
    if len(chosen) < size:
        extra = order[~keep[order] & np.isfinite(caps[order])][: size - len(chosen)]
        chosen = np.r_[chosen, extra]
    out = np.zeros(len(caps), dtype=bool)
    out[chosen] = True
    return out


def _assemble(
    settings, cal, meta, out, actions, fundamentals, constituents, events, regimes
) -> SimulatedMarket:
    """Turn the simulation's arrays and event lists into vendor-shaped tables (emptying `out`,
    each day-by-ticker array freed once its column is made)."""
    names = meta["ticker"].to_numpy(dtype=object)
    cols, rows = np.nonzero(np.isfinite(out["close"]).T)  # (ticker by ticker, days in order)
    with ThreadPoolExecutor(2) as pool:  # (numpy gathers run without the GIL: both cores)
        same = itertools.repeat
        fields = pool.map(_gathered, same(out), MARKET_FIELDS, same(rows), same(cols))
        columns = {"ticker": names[cols], "date": cal[rows]}
        columns |= dict(zip(MARKET_FIELDS, fields, strict=True))
    prices = pd.DataFrame(columns, copy=False)  # (the arrays as they are, no second copy)
    del columns, rows, cols

    columns = ["i", "period_end", "announcement_date", *FUNDAMENTAL_METRICS]
    fund = pd.DataFrame({k: np.concatenate([q[k] for q in fundamentals]) for k in columns})
    fund.insert(0, "ticker", names[fund.pop("i").to_numpy()])
    day, firm, kind, value = map(list, zip(*actions, strict=True)) if actions else [[]] * 4
    ca = pd.DataFrame(
        {
            "ticker": names[firm],
            "date": cal[day],
            "action": np.array(kind, dtype=object),
            "value": np.array(value, dtype=float),
        }
    )
    # a company that is gone publishes no later report
    delist = ca[ca.action == "delisting"].set_index("ticker")["date"]
    gone = fund["ticker"].map(delist)
    fund = fund[gone.isna() | (fund["announcement_date"] < gone)]
    # and nothing announced after the query (the day after the simulated end) is known to it
    fund = fund[fund["announcement_date"] <= cal[-1] + pd.Timedelta(days=1)].reset_index(drop=True)
    days, members, weights = zip(*constituents, strict=True)
    cons = pd.DataFrame(
        {
            "date": cal[np.repeat(days, [len(m) for m in members])],
            "ticker": names[np.concatenate(members)],
            "weight": np.concatenate(weights),
        }
    )
    cons.insert(1, "index", settings.index_name)
    ev = pd.DataFrame(events, columns=["ticker", "date", "event", "value"])
    return SimulatedMarket(
        settings,
        cal,
        meta,
        prices,
        fund,
        ca.sort_values(["ticker", "date"], kind="stable"),
        cons,
        ev,
        regimes,
    )


def _gathered(out: dict, key: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """out[key] at (rows, cols), the day-by-ticker array freed once read."""
    return out.pop(key)[rows, cols]


def _quoted(frame: pd.DataFrame) -> pd.DataFrame:
    """The simulated vendor quotes numbers to 10 significant digits, as a data feed does; the
    datalog then stores exactly these values (and the same bytes as before logs were lossless)."""
    quoted = {
        col: quote(values.to_numpy()) if pd.api.types.is_float_dtype(values.dtype) else values
        for col, values in frame.items()
    }  # (new arrays for the numbers only, not a copy of the whole frame first)
    return pd.DataFrame(quoted, index=frame.index, copy=False)


_RENDER_ROWS = 200_000  # rows of logs rendered together: fast, and memory stays flat
_RENDERERS, _WRITERS = 2, 4  # threads rendering batches of logs and writing files (_LogWriter)
_FILES = 64  # logs a writer writes together (storage.atomic_write_many)


def query_timestamp_base(settings: SimulationSettings) -> int:
    """A fixed 'query time' (the day after the simulated end, UTC) so logs never depend on today."""
    moment = dt.datetime.combine(settings.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000


def query(settings: SimulationSettings, datalog_dir, progress: bool = False) -> dict[str, int]:
    """Simulate the market and write it to the datalog, one logfile per vendor-style query.

    Rerunning with the same settings writes nothing new (identical files are already logged).
    Returns counts of files written and already present.
    """
    with heap.kept():  # (tens of millions of numbers: see heap)
        return _query(settings, datalog_dir, progress)


def _query(settings: SimulationSettings, datalog_dir, progress: bool) -> dict[str, int]:
    market = simulate(settings, progress=progress)
    index = settings.index_name
    with _LogWriter(datalog_dir, query_timestamp_base(settings), progress) as writer:

        def logs_by(
            data_type: str, frame: pd.DataFrame, key: str, label, drop: bool, quoted: bool
        ) -> None:
            """One log per value of `key` (sorted), each holding that value's rows in their
            order, handed to the writer a few hundred thousand rows at a time (quoted: with
            its numbers quoted to 10 digits there)."""
            codes, values = pd.factorize(frame[key], sort=True, use_na_sentinel=False)
            order = np.argsort(codes, kind="stable")  # (ranks: integers, not millions of text)
            if drop:
                del frame[key]  # (the others stay as they are: nothing copied)
            codes = codes[order]
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else []
            bounds = np.r_[starts, len(codes)].astype(np.int64)
            first = 0
            while first < len(starts):  # logs first..last-1, about _RENDER_ROWS rows together
                last = max(int(np.searchsorted(bounds, bounds[first] + _RENDER_ROWS, "right")) - 1,
                           first + 1)  # fmt: skip
                last = min(last, len(starts))
                labels = [label(values[codes[starts[i]]]) for i in range(first, last)]
                rows = frame.take(order[bounds[first] : bounds[last]])  # (a batch at a time)
                rows.index = pd.RangeIndex(len(rows))
                spans = bounds[first : last + 1] - bounds[first]
                writer.submit(data_type, labels, rows, spans, quoted)
                first = last

        logs_by(
            "constituent_list",
            market.constituents,
            "date",
            lambda d: f"{pd.Timestamp(d):%Y%m%d}_{index}",
            drop=False,
            quoted=False,
        )
        for data_type, label, frame in (
            ("metadata_array", "universe", market.metadata),
            ("market_regimes", index, market.regimes),
        ):
            writer.submit(data_type, [label], frame)
        per_ticker = [
            ("ticker_market_data", market.prices),
            ("ticker_fundamental_data", market.fundamentals),
            ("corporate_actions", market.corporate_actions),
        ]
        del market  # (each table freed once it is sorted for its logs)
        while per_ticker:
            logs_by(*per_ticker.pop(0), "ticker", str, drop=True, quoted=True)
    counts = writer.counts
    log.info(
        "simulated vendor: %d logfiles written, %d already logged",
        counts["written"],
        counts["already_logged"],
    )
    return counts


class _LogWriter:
    """Renders batches of logs (render_logs: checked as 02 reads them) on two threads while the
    caller prepares the next batch, and writes the files on four more: Arrow's kernels, the
    checks' CSV reader and fsync run without the GIL, so both cores keep working while files
    wait for the disk. Logs are numbered in the order they are submitted (base, base + 1, ...),
    so every file's name and bytes are the same whatever order the work finishes in; a failure
    stops the rest and is raised. Memory stays flat: the caller waits while two batches are
    being rendered, or eight groups of rendered files wait for their writers."""

    def __init__(self, datalog_dir, base: int, progress: bool) -> None:
        self.datalog_dir, self.stamps = datalog_dir, itertools.count(base)
        self.counts = {"written": 0, "already_logged": 0}
        self.renderers = ThreadPoolExecutor(_RENDERERS, thread_name_prefix="datalog-render")
        self.writers = ThreadPoolExecutor(_WRITERS, thread_name_prefix="datalog-write")
        self.rendering: collections.deque[Future] = collections.deque()  # batches
        self.writing: collections.deque[Future] = collections.deque()  # groups of files
        self.bar = tqdm(desc="writing datalog", unit="log", disable=not progress, leave=False)

    def submit(
        self, data_type: str, labels: list[str], frame: pd.DataFrame, starts=None, quoted=False
    ) -> None:
        """Logs labelled `labels`, log k holding rows starts[k]:starts[k + 1] of frame (one log
        holding the whole frame without `starts`); quoted: the frame's numbers are quoted to
        10 digits first (_quoted), on the rendering thread."""
        names = [LogName(next(self.stamps), SOURCE, data_type, label) for label in labels]
        self.rendering.append(self.renderers.submit(self._render, names, frame, starts, quoted))
        self._collect(rendering=_RENDERERS, writing=2 * _WRITERS)

    def _render(self, names: list[LogName], frame: pd.DataFrame, starts, quoted) -> list[Future]:
        frame = _quoted(frame) if quoted else frame
        datas = (
            [render_log(names[0], frame)] if starts is None else render_logs(names, frame, starts)
        )
        logs = list(zip(names, datas, strict=True))
        return [self.writers.submit(write_logs_bytes, self.datalog_dir, logs[k : k + _FILES])
                for k in range(0, len(logs), _FILES)]  # fmt: skip

    def _collect(self, rendering: int, writing: int) -> None:
        """Waits until at most `rendering` batches are being rendered and `writing` groups of
        files written (so memory stays flat), counting what was written."""
        while len(self.rendering) > rendering:
            self.writing.extend(self.rendering.popleft().result())
        while len(self.writing) > writing:
            written = self.writing.popleft().result()
            self.counts["written"] += sum(written)
            self.counts["already_logged"] += len(written) - sum(written)
            self.bar.update(len(written))

    def __enter__(self) -> _LogWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self._collect(rendering=0, writing=0)
        finally:
            self.renderers.shutdown(wait=True, cancel_futures=True)
            self.writers.shutdown(wait=True, cancel_futures=True)
            self.bar.close()
