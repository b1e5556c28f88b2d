"""Training windows (L5): a model may have read about a company's later fortunes if the as-of
date of a decision falls before the model's training cutoff. Each decision is flagged, and the
evaluation splits every metric by that flag.

Cutoffs are the publishers' stated knowledge cutoffs or, where none is stated, the release date.
Add a model with `llm_cutoffs` in parameters.py (model id -> YYYY-MM-DD).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path

KNOWN = {
    "llama-3.2": "2023-12-31",  # Meta: knowledge cutoff December 2023
    "qwen2.5": "2024-09-19",  # no stated cutoff: its release, September 2024
    "deepseek-r1-distill": "2025-01-20",  # release, January 2025
    "smollm2": "2024-11-01",  # release, November 2024
}


def cutoff(model_id: str, extra: dict[str, str] | None = None) -> dt.date | None:
    """The training cutoff of a model (matched by family name, case-insensitive): from its id
    or path, and for a local folder also from what the folder says it is (config.json's
    `_name_or_path`, the model card's `base_model`), so a renamed or quantised copy of a known
    model is still recognised. `extra` (llm_cutoffs) wins over the built-in table."""
    table = {**KNOWN, **{k.lower(): v for k, v in (extra or {}).items()}}
    for name in _names(model_id):
        name = name.lower().replace("_", "-")
        for family in sorted(table, key=len, reverse=True):
            if family.replace("_", "-") in name:
                return dt.date.fromisoformat(table[family])
    return None


def _names(model_id: str) -> list[str]:
    names = [model_id]
    folder = Path(model_id)
    if not folder.is_dir():
        return names
    config = folder / "config.json"
    if config.is_file():
        with contextlib.suppress(ValueError, OSError):
            names.append(str(json.loads(config.read_text()).get("_name_or_path", "")))
    card = folder / "README.md"
    if card.is_file():
        for line in card.read_text(errors="replace").splitlines()[:60]:
            if line.strip().startswith(("base_model:", "- ")) and "/" in line:
                names.append(line.split(":", 1)[-1].strip(" -'\""))
    return [n for n in names if n]


def window_flag(as_of: str | dt.date, model_cutoff: dt.date | None) -> str:
    """'inside' when the model was trained on text from after the decision date (look-ahead
    possible), 'outside' when not, 'unknown' without a cutoff."""
    if model_cutoff is None:
        return "unknown"
    day = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    return "inside" if day <= model_cutoff else "outside"
