"""Executors: where the cells of a run execute, and how their results reach the store.

An executor takes the run's cells and calls ``finish(record)`` in the ``harness`` process as
each cell ends, in any order; ``finish`` writes the record to the store (so there is one
writer) and tells the plugins. Every cell still runs in a worker subprocess through
:class:`harness.runner.Runner`, so a crash, a hang or a diverging loss is handled the same way
everywhere. Two executors exist:

- ``local`` (the default): one :class:`~harness.runner.Runner` in this process, cells one after
  another, one warm worker per (backend, device);
- ``ray``: each cell a Ray task asking for ``--threads`` CPUs (and one GPU for a gpu cell, so a
  GPU runs one cell at a time), on a cluster (``--ray-address``) or on a local Ray instance
  started for the run. Ray is optional: ``pip install 'bn-harness[ray]'``.

The executor is not part of what a cell computes: a run may be resumed with another one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from harness.errors import UnknownNameError
from harness.executors.base import Executor, ExecutorOptions, Finish, Recorder
from harness.registry import DIST_NAME, load_object

EXECUTORS = {
    "local": "harness.executors.local:LocalExecutor",
    "ray": "harness.executors.ray_executor:RayExecutor",
}
"""Executor name -> ``module:class``; imported only when chosen (ray is heavy)."""
DEFAULT_EXECUTOR = "local"
DESCRIPTIONS = {
    "local": "worker subprocesses on this machine, one cell at a time (the default)",
    "ray": "each cell a Ray task, on a local Ray instance or a cluster (--ray-address)",
}
REQUIRES = {"ray": "ray"}
"""Executor name -> the package it needs beyond the core."""

__all__ = [
    "DEFAULT_EXECUTOR",
    "EXECUTORS",
    "Executor",
    "ExecutorOptions",
    "Finish",
    "Recorder",
    "install_hint",
    "make_executor",
    "needs",
    "running",
]


def make_executor(name: str, options: ExecutorOptions) -> Executor:
    """The executor called ``name``; unknown names and missing packages are one-line errors."""
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    executor: Executor = load_object(EXECUTORS[name])(options)
    return executor


def needs(name: str) -> str:
    """``executor 'NAME' needs PACKAGE: pip install 'bn-harness[NAME]'``."""
    return f"executor '{name}' needs {REQUIRES[name]}: pip install '{DIST_NAME}[{name}]'"


def install_hint(name: str) -> str:
    """Why executor ``name`` cannot run here ("" when it can), found without importing the
    package it needs (for ``harness list``)."""
    module = REQUIRES.get(name)
    if module is None or importlib.util.find_spec(module) is not None:
        return ""
    return needs(name)


@contextmanager
def running(executor: Executor) -> Iterator[Executor]:
    """Start ``executor`` (connect to Ray...), yield it, and always close it."""
    try:
        executor.start()
        yield executor
    finally:
        executor.close()
