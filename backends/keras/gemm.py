"""The float32 matrix-multiply rate of TensorFlow on given shapes (the timing roofline).

Measured as the training loop runs its products: XLA-compiled (the loop's ``jit_compile``
setting), the same operands every call (a training step reuses its weights, so they stay in
cache), every output returned (nothing hoisted, fused or dropped), calls back to back. A loop
inside one compiled call would avoid TensorFlow's per-call overhead (tens of microseconds,
a few percent at batch 32) but invites XLA to hoist or fuse the loop-invariant products.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from harness.backends.keras.loop import JIT_COMPILE  # noqa: E402
from harness.roofline import Shape, measure_rates, total_flops  # noqa: E402


def _products(pairs: list[tuple[tf.Tensor, tf.Tensor]]) -> list[tf.Tensor]:
    return [tf.matmul(a, b) for a, b in pairs]


def matmul_rates(shapes: list[Shape], repeats: int, device: str) -> list[float]:
    """FLOP/s per repeat of every ``(m, k, n)`` product of ``shapes`` on ``device``."""
    rng = np.random.default_rng(0)
    with tf.device(device):
        pairs = [
            (
                tf.constant(rng.standard_normal((m, k), np.float32)),
                tf.constant(rng.standard_normal((k, n), np.float32)),
            )
            for m, k, n in shapes
        ]
        products = tf.function(
            tf.autograph.experimental.do_not_convert(_products), jit_compile=JIT_COMPILE
        )

        def run(calls: int) -> None:
            out: list[tf.Tensor] = []
            for _ in range(calls):
                out = products(pairs)
            if out:
                out[-1].numpy()  # waits for the device

        return measure_rates(run, total_flops(shapes), repeats)
