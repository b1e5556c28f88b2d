"""A run as a whole, above the engine: `runner` takes settings to a finished archive (panel,
benchmark, the heartbeat loop, an LLM strategy's decisions, the contest's inputs, checkpoints and
resume), `trials` runs many of them as a resumable sweep on local processes or Ray, and `live`
trades a live account bar by bar (its brokers in `live_brokers`, `live_file_broker` and
`live_alpaca`, its long-running heartbeat in `live_loop`, its journal as a run archive for 04 in
`live_archive`).

May import: `engine`, `evaluation` (the contest's inputs stored with a run), `llm`, `data`,
`infra`, and the doors `config`, `cli`, `errors`. Imported by: `research` (the setup book),
`investor` (the page's backtest of a theme, the recorded plans), `api`, 03_trade.py and
04_evaluate.py (a live account's report).
"""
