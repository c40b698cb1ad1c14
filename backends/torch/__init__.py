"""The PyTorch backend plugin (the adapter is in :mod:`harness.backends.torch.backend`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.registry import BackendInfo

INFO = BackendInfo(
    name="torch",
    factory="harness.backends.torch.backend:TorchBackend",
    requires=("torch",),
    description="PyTorch: nn.Linear/BatchNorm1d, eager loop over preloaded tensors",
    extra="torch",
)


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register the PyTorch backend."""
    register(INFO)
