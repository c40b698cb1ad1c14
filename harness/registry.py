"""The one registry of backends, suites and datasets, filled by plugins through pluggy hooks.

Nothing outside this module looks a component up by name; adding a component is registering it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.errors import UnavailableError, UnknownNameError

DIST_NAME = "bn-harness"
T = TypeVar("T")


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class BackendInfo:
    """What the core knows about a backend without importing its framework.

    ``factory`` is ``"module:Class"`` of a :class:`harness.backend.Backend` subclass, imported
    only inside a worker. ``worker_env`` is set in the worker's environment before any import.
    """

    name: str
    factory: str
    requires: tuple[str, ...]
    description: str = ""
    extra: str = ""
    worker_env: dict[str, str] = field(default_factory=dict)
    deterministic_cpu: bool = True

    def missing(self) -> list[str]:
        """Required import names that cannot be found (checked without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def version(self) -> str:
        """Installed version of the first requirement, or ``""``."""
        for module in self.requires:
            for dist in (module, module.replace("_", "-")):
                try:
                    return importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    continue
        return ""

    def install_hint(self) -> str:
        """The one-line reason this backend cannot run here ("" when it can)."""
        missing = self.missing()
        if not missing:
            return ""
        extra = self.extra or self.name
        return (
            f"backend '{self.name}' needs {', '.join(missing)}: pip install '{DIST_NAME}[{extra}]'"
        )

    def check(self) -> None:
        """Raise :class:`UnavailableError` with the install hint when requirements are missing."""
        hint = self.install_hint()
        if hint:
            raise UnavailableError(hint)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset: ``loader`` is ``"module:function"`` taking a DataSpec, returning a Dataset."""

    name: str
    loader: str
    description: str = ""

    def load(self, spec: Any) -> Any:
        """Load the dataset described by ``spec`` (a :class:`harness.specs.DataSpec`)."""
        return load_object(self.loader)(spec)


class Table(Generic[T]):
    """Name -> component, refusing duplicates and listing the valid names on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.items: dict[str, T] = {}
        self.owners: dict[str, str] = {}

    def add(self, name: str, item: T, owner: str = "") -> None:
        """Add ``item``; a second component with the same name is an error."""
        if name in self.items:
            raise ValueError(
                f"{self.kind} '{name}' registered twice ({self.owners[name]}, {owner})"
            )
        self.items[name], self.owners[name] = item, owner

    def get(self, name: str) -> T:
        """Return the component or raise :class:`UnknownNameError` listing valid names."""
        try:
            return self.items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.items) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self.items)

    def register_callback(self, owner: str) -> Callable[[T], None]:
        """The ``register`` callable handed to a plugin's hook."""
        return lambda item: self.add(str(getattr(item, "name")), item, owner)  # noqa: B009
