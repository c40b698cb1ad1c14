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

from harness.errors import HarnessError, UnavailableError, UnknownNameError

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
    ``requires`` are import names checked without importing them; a missing one gives the
    install hint: ``install`` when set (a plugin's own command, e.g. ``pip install my-backend``),
    else ``pip install 'DISTRIBUTION[EXTRA]'`` (``distribution`` defaults to this package,
    ``extra`` to the backend name; a third-party ``distribution`` with no ``extra`` drops the
    brackets). See docs/backend-contract.md.
    """

    name: str
    factory: str
    requires: tuple[str, ...]
    description: str = ""
    extra: str = ""
    worker_env: dict[str, str] = field(default_factory=dict)
    deterministic_cpu: bool = True
    distribution: str = DIST_NAME
    install: str = ""

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
        return f"backend '{self.name}' needs {', '.join(missing)}: {self.install_command()}"

    def install_command(self) -> str:
        """The command that installs this backend's requirements."""
        if self.install:
            return self.install
        extra = self.extra or (self.name if self.distribution == DIST_NAME else "")
        target = f"{self.distribution}[{extra}]" if extra else self.distribution
        return f"pip install '{target}'"

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


@dataclass(frozen=True)
class SectionInfo:
    """A report section a suite names in ``report``: ``function`` is ``"module:function"``
    taking a :class:`harness.report.context.ReportContext` and returning markdown."""

    name: str
    function: str
    description: str = ""


@dataclass(frozen=True)
class ClaimInfo:
    """A claim a suite names in ``extra["claims"]``: ``function`` is ``"module:function"``
    taking the run's cells and the suite and returning claim results."""

    name: str
    function: str
    description: str = ""


@dataclass(frozen=True)
class ExecutorInfo:
    """Where a run's cells execute (``--executor``): ``factory`` is ``"module:Class"`` taking
    :class:`harness.executors.ExecutorOptions`, imported only when chosen."""

    name: str
    factory: str
    description: str = ""
    requires: tuple[str, ...] = ()
    extra: str = ""

    def install_hint(self) -> str:
        """The one-line reason this executor cannot run here ("" when it can)."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not missing:
            return ""
        extra = self.extra or self.name
        needs = ", ".join(missing)
        return f"executor '{self.name}' needs {needs}: pip install '{DIST_NAME}[{extra}]'"


class Table(Generic[T]):
    """Name -> component, refusing duplicates and listing the valid names on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.items: dict[str, T] = {}
        self.owners: dict[str, str] = {}
        self.refused: dict[str, str] = {}
        """Name -> why it was refused at registration (a suite that does not validate)."""

    def add(self, name: str, item: T, owner: str = "") -> None:
        """Add ``item``; a second component with the same name is an error."""
        if name in self.items:
            raise ValueError(
                f"{self.kind} '{name}' registered twice ({self.owners[name]}, {owner})"
            )
        self.items[name], self.owners[name] = item, owner

    def get(self, name: str) -> T:
        """Return the component or raise :class:`UnknownNameError` listing valid names."""
        if name in self.refused:
            raise HarnessError(self.refused[name])
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
