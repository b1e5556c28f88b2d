"""The data layer, the first half of the one-way flow: vendor -> datalog -> datasets -> panel.

- `vendors/`: each source turns a query into datalog files, nothing more (D2-D4, D9, D14).
- `datalog`: logfile names, label encoding, exact number text, validated reading, write-once (D1).
- `datasets`: versioned feather builds from the datalog, manifests, latest query wins (D5), and
  `quality`, the data-quality report of each version (D7), with `consistency`, the checks of what
  a vendor reports across tables (fundamentals' vintage, unapplied distributions, cap units).
- `panel` (+ `panel_cache`): a dataset version as dense day x ticker arrays, the engine's input.
- Shared vocabulary and readers: `vocabulary` (log types, tables, fields), `frequency` (bar
  frequencies), `calendars` (exchange calendars), `textio` (users' text files in their real
  encoding), `holdings` (holdings files: a starting portfolio, the investor's upload).

May import: `errors`, `config` (settings only), `infra`. Never imports `engine` or anything above
it (tests/test_layout.py walks the imports). Imported by: engine, llm, evaluation, run, research,
investor, the doors (`api`, `cli`, `config` for its vocabulary) and the numbered scripts 01 and 02.
This file stays free of imports: `config` imports `data.vocabulary` while it loads.
"""
