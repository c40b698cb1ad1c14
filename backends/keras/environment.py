"""The Keras engines and the environment each needs before ``import keras``: defined once here.

Keras 3 picks its engine (TensorFlow, JAX or torch) from ``KERAS_BACKEND`` when it is first
imported, once per process, so each engine is its own registered backend and worker process.
This module imports no framework: the plugin module reads it to register the backends, and the
adapter modules call :func:`ensure_engine` before their ``import keras``.
"""

from __future__ import annotations

import os

ENGINES: dict[str, str] = {"keras": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}
"""Backend name -> Keras engine (the value of ``KERAS_BACKEND``)."""
ENGINE_REQUIRES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("keras", "tensorflow"),
    "jax": ("keras", "jax"),
    "torch": ("keras", "torch"),
}
ENGINE_ENV: dict[str, dict[str, str]] = {
    "tensorflow": {
        # Hide TensorFlow's C++ INFO/WARNING chatter (CPU feature guard, oneDNN notices, XLA).
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # Grow GPU memory on demand instead of grabbing it all at start-up (read at GPU init).
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    },
    # JAX grabs 75% of a GPU at start without this; quiet XLA's C++ info logs.
    "jax": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_CPP_MIN_LOG_LEVEL": "1"},
    "torch": {},
}


def worker_env(engine: str) -> dict[str, str]:
    """What a worker of ``engine`` sets before any import: ``KERAS_BACKEND`` and the engine's."""
    return {"KERAS_BACKEND": engine, **ENGINE_ENV[engine]}


def ensure_engine(default: str = "tensorflow") -> str:
    """Set the environment of ``$KERAS_BACKEND`` (else ``default``) unless already set.

    Workers have it from ``worker_env``; this covers a direct import of an adapter module.
    Returns the engine Keras will use when it is imported after this call.
    """
    engine = os.environ.setdefault("KERAS_BACKEND", default)
    for key, value in ENGINE_ENV.get(engine, {}).items():
        os.environ.setdefault(key, value)
    return engine
