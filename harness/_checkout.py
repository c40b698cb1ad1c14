"""Importing ``harness`` from a source checkout rather than from an installed copy.

The checkout keeps the adapters, suites and baseline scripts beside ``harness/`` (in
``backends/``, ``suites/`` and ``baselines/``); ``pyproject.toml``'s ``package-dir`` maps them to
``harness.backends``, ``harness.suites`` and ``harness.baselines_scripts`` in the wheel, and an
editable install maps them the same way. A checkout imported directly (``python -m harness.cli``
started in it puts the current folder first on ``sys.path``, ahead of the installed package)
would lose them: the built-in backends would vanish from ``harness list``. :func:`install` adds a
finder that resolves exactly the mapped names to that checkout's own folders (ahead of an
installed copy's), so a checkout imports as the same package tree the wheel installs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path


class CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds the packages ``pyproject.toml`` maps to folders outside ``harness/``."""

    def __init__(self, mapping: dict[str, Path]) -> None:
        self.mapping = mapping

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        folder = self.mapping.get(fullname)
        if folder is None or not (folder / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def package_dirs(root: Path) -> dict[str, Path]:
    """``harness.*`` packages that ``root/pyproject.toml`` maps to folders other than their own."""
    import tomllib

    try:
        tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
        dirs = tool.get("package-dir", {})
    except (OSError, KeyError, ValueError):
        return {}
    return {
        name: root / folder
        for name, folder in dirs.items()
        if name.startswith("harness.") and folder != name.replace(".", "/")
    }


def install(package_file: str) -> None:
    """Add the finder when ``harness`` was imported from a checkout (its adapters not inside it)."""
    here = Path(package_file).resolve().parent
    root = here.parent
    if (here / "backends").is_dir() or not (root / "backends" / "__init__.py").is_file():
        return  # an installed copy: the wheel has the mapped folders inside harness/
    if any(isinstance(f, CheckoutFinder) for f in sys.meta_path):
        return
    mapping = package_dirs(root)
    if mapping:
        sys.meta_path.insert(0, CheckoutFinder(mapping))
