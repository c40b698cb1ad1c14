"""A third-party backend for bn-harness, added through the ``harness`` entry-point group only.

This module is the plugin: it registers a :class:`~harness.registry.BackendInfo` and imports
nothing heavy. The adapter class lives in :mod:`harness_numpy_backend.backend` and is imported
by the harness only inside a worker process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.registry import BackendInfo

INFO = BackendInfo(
    name="numpy",
    factory="harness_numpy_backend.backend:NumpyBackend",
    requires=("numpy",),
    description="float64 NumPy MLP with a hand-written BatchNorm (third-party example)",
    extra="numpy",
)


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register the NumPy backend."""
    register(INFO)
