"""A third-party backend that cannot share a process: the reference MLP behind Keras on JAX.

Registered only where ``HARNESS_PLUGINS`` names this module (the conformance test does, for one
``harness check solo``). Like any Keras-engine backend it needs ``KERAS_BACKEND`` set before
keras is imported, so it sets it through ``worker_env`` and refuses to start in a process that
imported keras on another engine: it can only be tested in its own worker. It also names its own
distribution, so its install hint is not this project's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fake_plugin import FakeBackend

from harness.hookspecs import hookimpl
from harness.registry import BackendInfo

INFO = BackendInfo(
    name="solo",
    factory="solo_plugin:SoloBackend",
    requires=("keras", "jax"),
    description="reference MLP that insists on Keras-on-JAX in its process (tests only)",
    worker_env={"KERAS_BACKEND": "jax"},
    distribution="harness-solo-backend",
)


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register ``solo``."""
    register(INFO)


class SoloBackend(FakeBackend):
    """The fake backend, refusing a process whose keras runs on another engine."""

    name = "solo"

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        import keras

        engine = keras.backend.backend()
        if engine != "jax":
            raise RuntimeError(f"solo needs keras on jax in its own process, found {engine}")
        super().__init__(device, threads)

    def versions(self) -> dict[str, str]:
        """The keras engine this process runs (jax) and numpy."""
        import keras

        return {**super().versions(), "engine": keras.backend.backend()}
