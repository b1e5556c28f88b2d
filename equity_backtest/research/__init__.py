"""Research products on top of the engine (S3-S6): factor research with information coefficients
and quantile spreads (`factors`, `python -m equity_backtest.research`), setup studies graded in R
(`setups`, `python -m equity_backtest.research.setups`) and the tested scores behind the bundled
strategies in strategies/ (`themes`).

May import: `run` and every layer below it, and the doors. Imported by: `investor` (theme scores)
and the user's strategy files; never by the core (data, engine, llm, evaluation, run).
"""
