"""equity_backtest: survivorship- and look-ahead-free equity backtests, from vendor logs to a tear sheet.

Data flows one way: vendor -> datalog -> datasets -> panel -> view -> weights -> orders -> fills
-> ledger -> archive -> metrics -> report. Each numbered script at the repository root runs one
stage and talks to the next only through files.
"""

__version__ = "0.1.0"
