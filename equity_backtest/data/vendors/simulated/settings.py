"""What the simulated market is asked for and what it gives (SimulationSettings,
SimulatedMarket), and its calibration: sectors, fundamentals' metrics, planted premia, size and
issuance, the index rule's buffer, market regimes, ticker names and the trading calendar."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from ... import calendars

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
# concentrating into a few names over decades (calibrated with python -m equity_backtest.evaluation.realism).
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
