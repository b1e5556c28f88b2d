"""Plumbing under every stage: write-once and replace-in-place file writes with checksums and the
user's umask (`storage`), fsspec stores such as s3:// through local mirrors (`remote`), stage locks
and owner marks of work folders (`locks`), named fault points for the kill tests (`faults`) and the
C heap held while a large simulation runs (`heap`).

May import: `errors`, and other infra modules. Imported by: every layer above (data, engine, llm,
evaluation, run, research, investor) and the doors (`cli`, `api`). Nothing here knows what a
ticker, a dataset or a run is.
"""
