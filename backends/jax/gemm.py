"""The float32 matrix-multiply rate of XLA (via JAX) on given shapes (the timing roofline).

One jitted function computes every product of a training step and returns the outputs; calls
are dispatched back to back (JAX dispatch is asynchronous, so dispatch overlaps compute) and
the last call's outputs are waited for.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from harness.roofline import Shape, measure_rates, total_flops


def matmul_rates(shapes: list[Shape], repeats: int, device: Any) -> list[float]:
    """FLOP/s per repeat of every ``(m, k, n)`` product of ``shapes`` on ``device``."""
    rng = np.random.default_rng(0)
    pairs = [
        (
            jax.device_put(rng.standard_normal((m, k), np.float32), device),
            jax.device_put(rng.standard_normal((k, n), np.float32), device),
        )
        for m, k, n in shapes
    ]
    products = jax.jit(lambda ps: [jnp.matmul(a, b) for a, b in ps])

    def run(calls: int) -> None:
        out = None
        for _ in range(calls):
            out = products(pairs)
        jax.block_until_ready(out)

    return measure_rates(run, total_flops(shapes), repeats)
