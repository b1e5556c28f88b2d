"""The package's layout (A2): folders that follow the one-way flow, imports that only point down
it, no import circles, no module over about 500 lines, and the old module names still working.

The layers, bottom up (docs/architecture.md draws them):

    infra < data < engine < llm < evaluation < run < research < investor

A module may import its own layer and any layer below it, and the doors `errors`, `config` and
`cli`; nothing in the package imports `api` (the notebook door) or an old module name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "equity_backtest"
LAYERS = ("infra", "data", "engine", "llm", "evaluation", "run", "research", "investor")
# what each door may import: the doors sit beside the layers, so they reach down only to leaves
DOORS = {
    "errors": set(),
    "config": {
        "errors",
        "data.frequency",
        "data.vocabulary",
        "data.vendors.bloomberg_fields",
        "data.vendors.datastream_fields",
        "data.vendors.wrds_fields",
        "data.vendors.vendor_checks",  # the vendor settings' rules, beside their field lists
    },
    "cli": {"errors", "config", "infra", "infra.remote", "infra.locks", "infra.storage"},
}
MAX_LINES = 550  # "about 500": a module past this is split along its own seams


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module of the package that `source` imports, at any depth (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "equity_backtest"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "equity_backtest":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def back_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Each import that points up the flow, or into a door it may not use, as a sentence."""
    wrong = []
    for name, targets in sorted(graph.items()):
        mine = layer_of(name)
        for target in sorted(targets):
            theirs = layer_of(target)
            short = target.removeprefix("equity_backtest.")
            if theirs in ("api", "_moved") and mine != "":
                wrong.append(f"{name} imports {target}: nothing in the package imports {theirs}")
            elif mine in DOORS:
                if short not in DOORS[mine] and target != name:
                    wrong.append(f"{name} imports {target}: the door '{mine}' may not")
            elif mine in LAYERS and theirs in LAYERS and LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{name} ({mine}) imports {target} ({theirs}), a layer above it")
    return wrong


def the_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: imports_of(name, path.read_text(), path.name == "__init__.py", known) - {name}
        for name, path in found.items()
    }


def test_imports_point_down_the_flow():
    assert back_arrows(the_graph()) == []


def test_every_import_names_a_module_that_is_there():
    """Relative imports resolve inside the package (a lazy import left one level short by a
    move is caught here, not by the user who reaches that line), and no module of the package
    uses an old name."""
    known = set(modules())
    missing = {
        name: sorted(t for t in targets if t not in known)
        for name, targets in the_graph().items()
        if any(t not in known for t in targets)
    }
    assert missing == {}


def test_the_check_sees_a_new_back_arrow():
    """The check itself can fail: a data module importing the engine, a core module importing
    a product, the engine importing the notebook API and config reaching up are all caught."""
    known = set(modules())
    planted = {
        "equity_backtest.data.panel": "from ..engine import loop\n",
        "equity_backtest.engine.loop": "def f():\n    from ..investor import planner\n",
        "equity_backtest.evaluation.metrics": "from .. import api\n",
        "equity_backtest.config": "from .engine.spec import EngineSpec\n",
    }
    graph = {name: imports_of(name, src, False, known) for name, src in planted.items()}
    assert len(back_arrows(graph)) == 4


def test_no_import_circles():
    """No module reaches itself through its imports (the investor's page and planner, the
    simulator and its realism report used to)."""
    graph = the_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_no_module_over_about_500_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_subpackage_says_its_job_and_its_neighbours():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc and "Imported by" in doc, init


def test_old_module_names_still_import():
    """A user's algorithm file written before the move (`from equity_backtest import themes`),
    and a generated setup book, still work: the same module object, with a warning naming the
    new place."""
    from equity_backtest.research import themes

    for name in ("themes", "panel", "vendors.simulated"):
        sys.modules.pop(f"equity_backtest.{name}", None)
    with pytest.warns(DeprecationWarning, match="equity_backtest.research.themes"):
        from equity_backtest import themes as old
    assert old is themes
    assert old.__spec__.name == "equity_backtest.research.themes"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import equity_backtest.panel
        from equity_backtest.vendors.simulated import SimulationSettings
    from equity_backtest.data import panel
    from equity_backtest.data.vendors import simulated

    assert equity_backtest.panel is panel
    assert SimulationSettings is simulated.SimulationSettings


@pytest.mark.parametrize(
    "module",
    [
        "equity_backtest.investor",
        "equity_backtest.research",
        "equity_backtest.research.setups",
        "equity_backtest.setups",  # the name before the move
        "equity_backtest.llm",
        "equity_backtest.evaluation.realism",
        "equity_backtest.realism",  # the name before the move
    ],
)
def test_entry_points_run(module):
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
