"""Load a user's algorithm file and hand back its compute_weights (S1)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from .errors import BadInputError


def load_compute_weights(path: str | Path) -> Callable:
    """Import the file as a module (any name, any folder) and return its compute_weights."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"algorithm file {path} not found; pass --algorithm PATH")
    spec = importlib.util.spec_from_file_location(f"_user_algorithm_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise BadInputError(f"{path}: could not import it ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, "compute_weights", None)
    if not callable(fn):
        raise BadInputError(f"{path} defines no compute_weights(view, params) function")
    return fn
