"""A suite checked when it registers, so a misspelled key fails before any cell runs.

Unknown keys in variants, sweeps and ``quick``, unknown values of the specs' choice fields,
and task, report-section and claim names that resolve to nothing are one-line
:class:`~harness.errors.HarnessError` messages naming the suite, the field and the valid ones.

A ``"module:function"`` name is resolved *without importing the module* (a plugin's task module
may import a framework, which the core never does): the module must be found by
:func:`importlib.util.find_spec` and, when its source is readable, define ``function`` at top
level (a ``def``, ``class``, assignment or import of that name). A module already imported is
checked with ``getattr``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import importlib.util
import sys
from collections.abc import Collection, Iterable
from typing import Any

from harness import tasks
from harness.errors import HarnessError, UnknownNameError
from harness.specs import SPEC_PARTS, check_fields

QUICK_KEYS = ("epochs", "seeds")
"""``quick`` keys besides sweep keys (``train.x``/``model.x``)."""


def check_suite(suite: Any, sections: Collection[str], claims: Collection[str]) -> None:
    """Raise :class:`HarnessError` (one line, naming ``suite``) for its first mistake."""
    try:
        _check(suite, sections, claims)
    except HarnessError as exc:
        raise HarnessError(f"suite '{suite.name}': {exc}") from None


def _check(suite: Any, sections: Collection[str], claims: Collection[str]) -> None:
    for variant in suite.variants:
        for part in ("model", "train"):
            try:
                check_fields(SPEC_PARTS[part], getattr(variant, part))
            except HarnessError as exc:
                raise HarnessError(f"variant '{variant.name}': {exc}") from None
    check_point_keys("sweep", suite.sweep)
    for key, values in suite.sweep.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or not values:
            raise HarnessError(f"sweep '{key}' needs a non-empty tuple of values, got {values!r}")
    for key in suite.quick:
        if key not in QUICK_KEYS and "." not in str(key):
            raise UnknownNameError("quick key", key, [*QUICK_KEYS, "model.FIELD", "train.FIELD"])
    check_point_keys("quick", {k: v for k, v in suite.quick.items() if "." in str(k)})
    check_path("task", tasks.resolve(suite.task))
    for name in suite.report:
        if ":" in name:
            check_path("report section", name)
        elif name not in sections:
            raise UnknownNameError("report section", name, sections)
    for name in suite.extra.get("claims", ()):
        if name not in claims:
            raise UnknownNameError("claim", name, claims)


def check_point_keys(where: str, point: dict[str, Any]) -> None:
    """Every key of a sweep (or ``quick``'s sweep keys) is ``model.FIELD`` or ``train.FIELD``."""
    for key in point:
        part, dot, field = str(key).partition(".")
        if not dot or part not in ("model", "train"):
            valid = [f"{p}.{f.name}" for p in ("model", "train") for f in _fields(p)]
            raise UnknownNameError(f"{where} key", key, valid)
        check_fields(SPEC_PARTS[part], {field: None}, f"{where} key", f"{part}.")


def _fields(part: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(SPEC_PARTS[part]))


def check_path(kind: str, path: str) -> None:
    """``"module:attribute"`` names a module that exists and defines ``attribute`` (checked
    without importing the module unless it is already imported)."""
    module, colon, attr = path.partition(":")
    if not colon or not module or not attr:
        raise HarnessError(f"{kind} '{path}' is not 'module:function'")
    if module in sys.modules:
        if not hasattr(sys.modules[module], attr.split(".")[0]):
            raise HarnessError(f"{kind} '{path}': module '{module}' has no '{attr}'")
        return
    try:
        spec = _find_spec(module)
    except (ImportError, ValueError) as exc:  # a parent package is missing or broken
        raise HarnessError(f"{kind} '{path}': cannot find module '{module}' ({exc})") from None
    if spec is None:
        raise HarnessError(f"{kind} '{path}': no module named '{module}'")
    names = _top_level_names(spec)
    if names is not None and attr.split(".")[0] not in names:
        raise HarnessError(f"{kind} '{path}': module '{module}' has no '{attr}'")


def _find_spec(module: str) -> Any:
    """The module's spec, found without running its packages' ``__init__`` where the path
    finder can walk to it (``harness.report`` imports the statistics); else the import
    system's own search (which imports the parent packages)."""
    parts = module.split(".")
    spec = importlib.util.find_spec(parts[0])
    for i in range(2, len(parts) + 1):
        name = ".".join(parts[:i])
        if name in sys.modules:
            spec = sys.modules[name].__spec__
        elif spec is not None and spec.submodule_search_locations:
            spec = importlib.machinery.PathFinder.find_spec(
                name, list(spec.submodule_search_locations)
            )
        else:
            spec = None
    return spec or importlib.util.find_spec(module)


def _top_level_names(spec: Any) -> set[str] | None:
    """Names a module's source binds at top level (inside ``if``/``try`` blocks too); ``None``
    when the source is not readable or binds names dynamically (``*`` import, ``__getattr__``)."""
    try:
        source = spec.loader.get_source(spec.name)
    except (AttributeError, ImportError, OSError, SyntaxError):
        return None
    if source is None:
        return None
    names: set[str] = set()
    todo = list(ast.parse(source).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, block, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)
    return None if "*" in names or "__getattr__" in names else names
