"""The core's layering, read from the source: no import circle in ``harness/`` and no module
below the command line importing the report package.

Every ``import`` counts, function-level ones included (a function-level import of the project's
own module to dodge a circle is the circle), and importing ``a.b.c`` runs ``a.b``'s
``__init__`` too, so it is an edge to ``a.b`` as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).parent
REPORT = "harness.report"
CLI_LAYER = "harness.cli"
"""The command line (this package and its modules): the only modules outside ``harness.report``
that may import it."""
SHIMS = frozenset({"harness.commands"})
"""Old module names kept importable as re-exports of the command line."""

Graph = dict[str, set[str]]


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``root`` (the ``harness`` package folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The module names one import statement names (a ``from X import y`` names ``X.y`` too)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _with_parents(target: str, importer: str) -> set[str]:
    """``target`` and the packages it runs on import, but not the importer's own packages."""
    parts = target.split(".")
    names = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {n for n in names if not (importer == n or importer.startswith(n + "."))}


def import_graph(root: Path) -> Graph:
    """Module -> the ``harness`` modules it imports anywhere in its source."""
    modules = module_names(root)
    graph: Graph = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, name, path.name == "__init__.py"):
                    edges |= _with_parents(target, name)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph: Graph) -> list[str]:
    """One import circle as a path ``[a, b, ..., a]``, or ``[]`` when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def in_cli(name: str) -> bool:
    """Whether module ``name`` is part of the command line (or a re-export of it)."""
    return name == CLI_LAYER or name.startswith(CLI_LAYER + ".") or name in SHIMS


def report_importers(graph: Graph) -> list[str]:
    """``module -> harness.report...`` for every import of the report package from below."""
    inside = (REPORT, REPORT + ".")
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if target.startswith(inside) and not name.startswith(inside) and not in_cli(name)
    )


def test_the_walker_sees_function_level_relative_and_package_imports(tmp_path: Path) -> None:
    """A circle made only of a function-level ``from . import`` and a package ``__init__``
    is found, with its path."""
    pkg = tmp_path / "harness"
    (pkg / "report").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "runs.py").write_text("def f():\n    from harness.report.stats import x\n")
    (pkg / "report" / "__init__.py").write_text("from .. import runs\n")
    (pkg / "report" / "stats.py").write_text("x = 1\n")
    graph = import_graph(pkg)
    assert graph["harness.runs"] == {"harness.report", "harness.report.stats"}
    assert graph["harness.report"] == {"harness.runs"}
    assert find_cycle(graph) == ["harness.report", "harness.runs", "harness.report"]
    assert report_importers(graph) == [
        "harness.runs -> harness.report",
        "harness.runs -> harness.report.stats",
    ]


def test_a_graph_without_circles_passes() -> None:
    """A diamond is no circle."""
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) == []


@pytest.fixture(scope="module")
def graph() -> Graph:
    """The import graph of the installed ``harness`` package."""
    found = import_graph(ROOT)
    assert {"harness.cli", "harness.cli.commands", "harness.report"} <= found.keys()
    return found


def test_no_import_circle_in_harness(graph: Graph) -> None:
    """No module of ``harness`` imports, however indirectly, itself."""
    cycle = find_cycle(graph)
    assert not cycle, "import circle: " + " -> ".join(cycle)


def test_only_the_report_and_the_command_line_import_the_report(graph: Graph) -> None:
    """Run orchestration, results, claims and ``compare`` read the results layer, not
    ``harness.report``."""
    offenders = report_importers(graph)
    assert not offenders, "imports of harness.report from below it: " + "; ".join(offenders)
