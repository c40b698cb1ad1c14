"""The float32 matrix-multiply rate of Keras' engine on given shapes (the timing roofline).

Measured as the training loop runs its products: ``keras.ops.matmul`` compiled as the engine's
loop is (XLA ``tf.function``, ``jax.jit``, eager torch), the same operands every call (a training
step reuses its weights, so they stay in cache), every output returned (nothing hoisted, fused
or dropped), calls back to back, the last output waited for. A loop inside one compiled call
would avoid the per-call overhead (tens of microseconds, a few percent at batch 32) but invites
the compiler to hoist or fuse the loop-invariant products.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import keras
import numpy as np
from keras import ops

from harness.roofline import Shape, measure_rates, total_flops


def _products(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [ops.matmul(a, b) for a, b in pairs]


def matmul_rates(shapes: list[Shape], repeats: int, place: str, engine: ModuleType) -> list[float]:
    """FLOP/s per repeat of every ``(m, k, n)`` product of ``shapes`` on ``place``."""
    rng = np.random.default_rng(0)
    with keras.device(place):
        pairs = [
            (
                ops.convert_to_tensor(rng.standard_normal((m, k), np.float32)),
                ops.convert_to_tensor(rng.standard_normal((k, n), np.float32)),
            )
            for m, k, n in shapes
        ]
        products = engine.compile_fn(_products)

        def run(calls: int) -> None:
            out: list[Any] = []
            for _ in range(calls):
                out = products(pairs)
            if out:
                engine.wait(out[-1])

        return measure_rates(run, total_flops(shapes), repeats)
