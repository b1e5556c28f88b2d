"""Evaluation (V1-V8), what 04 does with a finished run: `returns` (read an archive), `metrics`,
`tables`, `trading` (exposures, round trips, top holdings), `contest`, `overfitting`, `findings`,
`plots`, `exports` (pyfolio), `tearsheet` (metrics.json and the CSV tables) and `tearsheet_html`
with `page` (the shell every HTML report shares), `trial_set` (a sweep's evaluation),
`live_page` (a live account's page against its backtest), and
`realism` (the simulated market's stylized facts against large-cap ranges,
`python -m equity_backtest.evaluation.realism`).

May import: `llm` (the decisions a run used), `engine` (the archive, the benchmark), `data`,
`infra` and the doors. Imported by: `run` (the contest's inputs stored with a run), `research`,
`investor`, `api` and 04_evaluate.py.
"""
