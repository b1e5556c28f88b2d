"""Module names from before the layout of issue 29, kept working.

Users' algorithm files, notebooks and generated setup books import `equity_backtest.themes`,
`equity_backtest.setups` and the like; scripts run `python -m equity_backtest.setups`. Each old
name is answered with the module that now does the job (the same module object, so a patch through
either name patches both), with a DeprecationWarning that names the new home.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED = {
    "storage": "infra.storage",
    "remote": "infra.remote",
    "locks": "infra.locks",
    "faults": "infra.faults",
    "heap": "infra.heap",
    "datalog": "data.datalog",
    "datasets": "data.datasets",
    "quality": "data.quality",
    "calendars": "data.calendars",
    "frequency": "data.frequency",
    "vocabulary": "data.vocabulary",
    "textio": "data.textio",
    "holdings": "data.holdings",
    "panel": "data.panel",
    "panel_cache": "data.panel_cache",
    "vendors": "data.vendors",
    "vendors.simulated": "data.vendors.simulated",
    "vendors.files": "data.vendors.files",
    "vendors.sql": "data.vendors.sql",
    "vendors.wrds": "data.vendors.wrds",
    "vendors.wrds_fields": "data.vendors.wrds_fields",
    "vendors.bloomberg": "data.vendors.bloomberg",
    "vendors.bloomberg_fields": "data.vendors.bloomberg_fields",
    "realism": "evaluation.realism",
    "view": "engine.view",
    "archive": "engine.archive",
    "comparison": "engine.comparison",
    "strategy_loader": "engine.strategy_loader",
    "runner": "run.runner",
    "trials": "run.trials",
    "setups": "research.setups",
    "themes": "research.themes",
    "web": "investor.page",
}
_PACKAGE = __name__.rpartition(".")[0]


def _new(fullname: str) -> str | None:
    """The new name of `fullname` (an old module, or a module inside an old package)."""
    parts = fullname.split(".")
    if parts[0] != _PACKAGE:
        return None
    for n in range(len(parts), 1, -1):
        old = ".".join(parts[1:n])
        if old in MOVED:
            return ".".join([_PACKAGE, MOVED[old], *parts[n:]])
    return None


class _OldName(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `equity_backtest.<old>` and loads it as the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.machinery.ModuleSpec(fullname, self) if _new(fullname) else None

    def create_module(self, spec):
        new = _new(spec.name)
        warnings.warn(f"{spec.name} is now {new}", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        spec.loader_state = module.__spec__  # the import system sets __spec__ to ours ...
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = module.__spec__.loader_state  # ... and this puts the module's back

    def get_code(self, fullname):
        """What `python -m equity_backtest.<old>` runs: the new module, as __main__."""
        source = f"import runpy\nrunpy.run_module({_new(fullname)!r}, run_name='__main__', alter_sys=True)\n"
        return compile(source, f"<{fullname}, now {_new(fullname)}>", "exec")

    def is_package(self, fullname) -> bool:
        return False


def install() -> None:
    if not any(isinstance(finder, _OldName) for finder in sys.meta_path):
        # first: the path finder would otherwise load a module inside an old package (such as
        # equity_backtest.vendors.simulated) a second time under the old name
        sys.meta_path.insert(0, _OldName())
