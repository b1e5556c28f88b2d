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
`python -m equity_backtest.evaluation.realism` against large-cap ranges.

The pieces: `settings` (what is asked and the calibration), `regimes` (the market factor),
`generator` (the day-by-day simulation), `tables` (the vendor's tables), `logs` (the query that
writes them as datalog files). Callers import from here.
"""

from .generator import simulate
from .logs import query, query_timestamp_base
from .settings import (
    FUNDAMENTAL_METRICS,
    SECTORS,
    SOURCE,
    SimulatedMarket,
    SimulationSettings,
    trading_calendar,
)

__all__ = [
    "FUNDAMENTAL_METRICS",
    "SECTORS",
    "SOURCE",
    "SimulatedMarket",
    "SimulationSettings",
    "query",
    "query_timestamp_base",
    "simulate",
    "trading_calendar",
]
