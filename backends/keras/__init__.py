"""The Keras 3 backend plugin: Keras on each of its engines (TensorFlow, JAX, torch).

One adapter (:mod:`harness.backends.keras.backend`) serves every engine; each engine is its own
registered backend (``keras``, ``keras-jax``, ``keras-torch``) because Keras chooses its engine
once per process, at import, from ``KERAS_BACKEND``: ``worker_env`` sets it (and what the
engine reads at import) in the worker before the adapter is loaded. Importing this module stays
cheap: it never imports keras or an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.backends.keras.environment import ENGINE_REQUIRES, ENGINES, worker_env
from harness.hookspecs import hookimpl
from harness.registry import BackendInfo

FAST_PATH = {
    "tensorflow": "one XLA-compiled tf.function per epoch",
    "jax": "one jitted lax.scan per epoch over stateless_call",
    "torch": "eager steps over preloaded tensors",
}
CLASSES = {"tensorflow": "KerasBackend", "jax": "KerasJaxBackend", "torch": "KerasTorchBackend"}


def backend_info(name: str) -> BackendInfo:
    """The registration of Keras on the engine of backend ``name`` (see ``ENGINES``)."""
    engine = ENGINES[name]
    return BackendInfo(
        name=name,
        factory=f"harness.backends.keras.backend:{CLASSES[engine]}",
        requires=ENGINE_REQUIRES[engine],
        description=f"Keras 3 on {engine}: Dense/BatchNormalization, {FAST_PATH[engine]}",
        extra=name,
        worker_env=worker_env(engine),
    )


INFOS = tuple(backend_info(name) for name in ENGINES)
INFO = INFOS[0]


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register Keras on each of its engines."""
    for info in INFOS:
        register(info)
