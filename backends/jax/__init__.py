"""The JAX backend plugin (the adapter is in :mod:`harness.backends.jax.backend`).

Importing this package must stay cheap: it imports neither jax nor flax. The worker environment
turns off JAX's GPU memory preallocation (75% of the GPU at start), so memory numbers mean
something and a second process on the same GPU can start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.registry import BackendInfo

INFO = BackendInfo(
    name="jax",
    factory="harness.backends.jax.backend:JaxBackend",
    requires=("jax", "flax", "optax"),
    description="JAX: Flax linen nn.Dense/BatchNorm, optax, one jitted lax.scan per epoch",
    extra="jax",
    worker_env={
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        # Quiet XLA/absl C++ info logs on stderr (kept for failed cells' tails).
        "TF_CPP_MIN_LOG_LEVEL": "1",
    },
)


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register the JAX backend."""
    register(INFO)
