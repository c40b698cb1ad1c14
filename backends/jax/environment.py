"""Where JAX runs: the XLA CPU thread setting and the device for ``cpu``/``gpu``.

Imported by the adapter only; reading ``XLA_FLAGS`` happens when XLA starts, so the thread
setting must be applied before the first computation.
"""

from __future__ import annotations

import os
from typing import Any

import jax

SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


def _xla_started() -> bool:
    """Whether the XLA backends exist already (then XLA_FLAGS changes are ignored)."""
    try:
        from jax._src import xla_bridge  # private: there is no public "initialized" query
    except ImportError:
        return False
    return bool(getattr(xla_bridge, "_backends", None))


def limit_threads(threads: int) -> str:
    """XLA has no CPU thread-count flag: one thread is ``multi_thread_eigen=false``, more is all.

    Must run before the XLA backend starts (flags are read then); returns what applies.
    """
    if threads != 1:
        return "all cores (XLA CPU has no thread-count setting)"
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" in flags:
        return "as set in XLA_FLAGS"
    if _xla_started():
        return "all cores (XLA started before the single-thread flag could be set)"
    os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAG}".strip()
    return "1 (xla_cpu_multi_thread_eigen=false)"


def jax_device(device: str) -> Any:
    """The JAX device for ``device``; a missing GPU falls back to the CPU (the runner skips gpu
    cells because :meth:`JaxBackend.devices` does not list it)."""
    if device == "gpu":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            pass
    return jax.devices("cpu")[0]
