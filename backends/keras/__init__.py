"""The Keras 3 backend plugin (the adapter is in :mod:`harness.backends.keras.backend`).

Importing this module must stay cheap: it names the adapter but never imports keras or
tensorflow. ``worker_env`` holds what TensorFlow reads once, at import time, so it is set in the
worker's environment before the adapter module is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.registry import BackendInfo

WORKER_ENV = {
    "KERAS_BACKEND": "tensorflow",
    # Hide TensorFlow's C++ INFO/WARNING chatter (CPU feature guard, oneDNN notices, XLA notes).
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # Grow GPU memory on demand instead of grabbing it all at start-up (read at GPU init).
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}

INFO = BackendInfo(
    name="keras",
    factory="harness.backends.keras.backend:KerasBackend",
    requires=("keras", "tensorflow"),
    description="Keras 3 on TensorFlow: Dense/BatchNormalization, one XLA-compiled loop per epoch",
    extra="keras",
    worker_env=WORKER_ENV,
)


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register the Keras backend."""
    register(INFO)
