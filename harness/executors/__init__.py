"""Executors: where the cells of a run execute, and how their results reach the store.

An executor takes the run's cells and calls ``finish(record)`` in the ``harness`` process as
each cell ends, in any order; ``finish`` writes the record to the store (so there is one
writer) and tells the plugins. Every cell still runs in a worker subprocess through
:class:`harness.runner.Runner`, so a crash, a hang or a diverging loss is handled the same way
everywhere. Executors are registered like every other component (``harness_register_executors``,
:data:`harness.builtins.EXECUTORS`); the core's two:

- ``local`` (the default): one :class:`~harness.runner.Runner` in this process, cells one after
  another, one warm worker per (backend, device);
- ``ray``: each cell a Ray task asking for ``--threads`` CPUs (and one GPU for a gpu cell, so a
  GPU runs one cell at a time), on a cluster (``--ray-address``) or on a local Ray instance
  started for the run. Ray is optional: ``pip install 'bn-harness[ray]'``.

The executor is not part of what a cell computes: a run may be resumed with another one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from harness.executors.base import Executor, ExecutorOptions, Finish, Recorder
from harness.registry import DIST_NAME

DEFAULT_EXECUTOR = "local"
REQUIRES = {"ray": "ray"}
"""Executor name -> the package it needs beyond the core (the registry's ``ExecutorInfo``
says the same for ``harness list``; this is the hint the executor itself raises)."""

__all__ = [
    "DEFAULT_EXECUTOR",
    "Executor",
    "ExecutorOptions",
    "Finish",
    "Recorder",
    "needs",
    "running",
]


def needs(name: str) -> str:
    """``executor 'NAME' needs PACKAGE: pip install 'bn-harness[NAME]'``."""
    return f"executor '{name}' needs {REQUIRES[name]}: pip install '{DIST_NAME}[{name}]'"


@contextmanager
def running(executor: Executor) -> Iterator[Executor]:
    """Start ``executor`` (connect to Ray...), yield it, and always close it."""
    try:
        executor.start()
        yield executor
    finally:
        executor.close()
