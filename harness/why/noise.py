"""The noise of the noise-injection suite, drawn by the core so every backend gets the same.

After each BN layer, per step and per unit ``j``: ``out_j * scale_j + shift_j`` with
``shift_j ~ U(-n, n)`` and ``scale_j ~ U(1, 1 + n)`` for noise level ``n`` (``TrainSpec.bn_noise``),
redrawn at every step from a generator seeded by ``(seed, step)``: a non-zero mean and a non-unit
variance that change the distribution of every unit's input at every step (Santurkar et al.
2018, section 2: per-unit mean ~ U(-n, n) and variance ~ U(1, n); here the scale, not the
variance, is drawn from U(1, 1 + n)).
"""

from __future__ import annotations

import numpy as np

from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
STREAM = 0x5A17  # separates the noise stream from the weights' and the batch order's


def step_noise(spec: ModelSpec, level: float, seed: int, step: int) -> Params | None:
    """The noise arrays of optimizer step ``step`` (None when ``level`` is 0 or there is no BN)."""
    if level <= 0 or spec.norm != "batchnorm":
        return None
    rng = np.random.default_rng([seed, step, STREAM])
    out: Params = {}
    for i, width in enumerate(spec.hidden_sizes):
        out[f"norm_{i}/noise_shift"] = rng.uniform(-level, level, width).astype(np.float32)
        out[f"norm_{i}/noise_scale"] = rng.uniform(1.0, 1.0 + level, width).astype(np.float32)
    return out
