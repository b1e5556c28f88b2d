"""A run as a whole, above the engine: `runner` takes settings to a finished archive (panel,
benchmark, the heartbeat loop, an LLM strategy's decisions, the contest's inputs, checkpoints and
resume), and `trials` runs many of them as a resumable sweep on local processes or Ray.

May import: `engine`, `evaluation` (the contest's inputs stored with a run), `llm`, `data`,
`infra`, and the doors `config`, `cli`, `errors`. Imported by: `research` (the setup book),
`investor` (the page's backtest of a theme), `api` and 03_trade.py.
"""
