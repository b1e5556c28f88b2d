"""Load a user's algorithm file and hand back its compute_weights (S1)."""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInputError


def load_module(path: str | Path) -> types.ModuleType:
    """Import an algorithm file as a module (any name, any folder)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"algorithm file {path} not found; pass --algorithm PATH")
    spec = importlib.util.spec_from_file_location(f"_user_algorithm_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file: reported, never a bare exit
        raise BadInputError(f"{path}: could not import it ({type(exc).__name__}: {exc})") from exc
    return module


def load_compute_weights(path: str | Path) -> Callable:
    """The file's compute_weights(view, params)."""
    fn = getattr(load_module(path), "compute_weights", None)
    if not callable(fn):
        raise BadInputError(f"{path} defines no compute_weights(view, params) function")
    return fn
