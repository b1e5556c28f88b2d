"""`python -m equity_backtest.research`: factor research (see research.factors)."""

from .. import cli
from .factors import main

cli.run(main)
