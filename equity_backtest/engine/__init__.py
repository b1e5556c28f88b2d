"""The trading engine, the middle of the one-way flow: panel -> view -> weights -> orders -> fills
-> ledger -> archive.

- The day: `clock` (heartbeats, rebalance days), `view` (the read-only point-in-time view handed
  to `compute_weights`), `orders` (weights -> orders, the order rules), `broker` (fills, volume
  caps) with `costs` (the cost models), `ledger` (cash, positions, corporate actions), `loop`
  (the heartbeat, one method per numbered step of the day), `checkpoint` (resume after a
  crash) and `live_state` (a live account's books between invocations, by ticker and date);
  `spec` is what the engine reads from the settings.
- Around it: `strategy_loader` (the user's algorithm file), `comparison` (the benchmark: the
  index's point-in-time total return, or a supplied series), `archive` (the run folder: names,
  the hidden work folder, the files 03 writes and 04 reads back).

May import: `data`, `infra`, and the doors `config` and `errors`. Never imports llm, evaluation,
run or the products (tests/test_layout.py). Imported by: llm (the view), evaluation (the archive),
run, research and investor.
"""
