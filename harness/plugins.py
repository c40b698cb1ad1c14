"""Plugin discovery: built-in plugins load through the same path as third-party ones.

Third-party plugins come from the entry-point group ``harness`` (or, without installing
them, from ``$HARNESS_PLUGINS``: comma-separated module names, inherited by workers). A
plugin that fails to import or to register is recorded in :attr:`Plugins.failures` and
skipped; the others still work.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import HarnessError
from harness.registry import (
    BackendInfo,
    ClaimInfo,
    DatasetInfo,
    ExecutorInfo,
    SectionInfo,
    Table,
)
from harness.suite_check import check_suite

ENTRY_POINT_GROUP = "harness"
PLUGINS_ENV = "HARNESS_PLUGINS"  # extra plugin modules by import name, comma-separated
CORE_PLUGINS = ("harness.builtins",)
"""Always loaded: the core's report sections, claims and executors."""
BUILTIN_PLUGINS = (
    "harness.backends.torch",
    "harness.backends.keras",
    "harness.backends.jax",
    "harness.suites",
    "harness.data.plugin",
)


@dataclass
class Plugins:
    """The plugin manager plus the registry its hooks filled."""

    pm: pluggy.PluginManager
    backends: Table[BackendInfo] = field(default_factory=lambda: Table("backend"))
    suites: Table[Any] = field(default_factory=lambda: Table("suite"))
    datasets: Table[DatasetInfo] = field(default_factory=lambda: Table("dataset"))
    sections: Table[SectionInfo] = field(default_factory=lambda: Table("report section"))
    claims: Table[ClaimInfo] = field(default_factory=lambda: Table("claim"))
    executors: Table[ExecutorInfo] = field(default_factory=lambda: Table("executor"))
    failures: dict[str, str] = field(default_factory=dict)


def _register_module(pm: pluggy.PluginManager, name: str, loader: Any, failures: dict) -> None:
    try:
        module = loader()
        pm.register(module, name=name)
    except Exception as exc:  # a broken plugin must not break discovery of the others
        failures[name] = f"{type(exc).__name__}: {exc}"


def _fill(plugins: Plugins) -> None:
    """Call every registration hook; suites last, each checked against what was registered."""
    tables: dict[str, Table[Any]] = {
        "harness_register_sections": plugins.sections,
        "harness_register_claims": plugins.claims,
        "harness_register_executors": plugins.executors,
        "harness_register_backends": plugins.backends,
        "harness_register_datasets": plugins.datasets,
        "harness_register_suites": plugins.suites,
    }
    for hook_name, table in tables.items():
        for impl in getattr(plugins.pm.hook, hook_name).get_hookimpls():
            register = table.register_callback(impl.plugin_name)
            if table is plugins.suites:
                register = _checked(plugins, impl.plugin_name, register)
            try:
                impl.function(register=register)
            except Exception as exc:
                plugins.failures[impl.plugin_name] = f"{type(exc).__name__}: {exc}"


def _checked(plugins: Plugins, owner: str, register: Callable[[Any], None]) -> Callable:
    """``register`` for suites: a suite that does not validate is refused (its name then
    gives the one-line reason, ``harness list`` lists it under its plugin); others register."""

    def check_and_register(suite: Any) -> None:
        try:
            check_suite(suite, plugins.sections.names(), plugins.claims.names())
        except HarnessError as exc:
            plugins.suites.refused[suite.name] = str(exc)
            known = plugins.failures.get(owner)
            plugins.failures[owner] = f"{known}; {exc}" if known else str(exc)
            return
        register(suite)

    return check_and_register


def make_plugins(builtins: tuple[str, ...] = BUILTIN_PLUGINS, entry_points: bool = True) -> Plugins:
    """Create a plugin manager, load built-in and entry-point plugins, fill the registry."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    for name in dict.fromkeys(CORE_PLUGINS + builtins):
        _register_module(
            pm, name, functools.partial(importlib.import_module, name), plugins.failures
        )
    extra = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for name in extra:
        _register_module(
            pm, name, functools.partial(importlib.import_module, name), plugins.failures
        )
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.value in builtins or pm.has_plugin(ep.name):
                continue
            _register_module(pm, ep.name, ep.load, plugins.failures)
    _fill(plugins)
    return plugins


@functools.lru_cache(maxsize=1)
def get_plugins() -> Plugins:
    """The process-wide plugin set (built once)."""
    return make_plugins()
