"""LLM recommendations (L1-L9): point-in-time prompts, backends, tolerant answers, a crash-safe
decision log, training-window flags and the evaluation of decisions. Needs the `llm` extra
(torch, transformers); the core backtester never imports this package unless a strategy asks for
it.

May import: `engine` (the point-in-time view, the clock), `data`, `infra` and the doors `config`,
`cli` and `errors`. Imported by: `evaluation` (the decision log and its scoring), `run` (the
decisions of a run of strategies/llm.py), strategies/llm.py and `python -m equity_backtest.llm`.
"""
