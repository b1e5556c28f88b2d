"""LLM recommendations (L1-L7): point-in-time prompts, backends, tolerant answers, a crash-safe
decision log and training-window flags. Needs the `llm` extra (torch, transformers); the core
backtester never imports this package unless a strategy asks for it."""
