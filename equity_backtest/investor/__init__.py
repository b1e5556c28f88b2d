"""The investor's rebalancing tool (P1-P4), a product on top of everything else: `planner` turns a
theme, an amount or a holdings file into a buy/sell list (`python -m equity_backtest.investor`),
and `page` serves the same planner as a local web page
(`python -m equity_backtest.investor serve`).

May import: `research` (theme scores), `run`, `evaluation`, `engine`, `data`, `infra` and the
doors. The page imports the planner, never the other way round. Imported by: nothing in the package.
"""
