"""Masks of trainable parameters for the bn-only suite, drawn by the core (seeded).

``all`` trains every array; ``bn-only`` only the BN scales and offsets (Frankle, Schwab and
Morcos 2021: the Dense weights stay at their random init); ``random-subset`` trains as many Dense
weights as BN-only trains BN parameters, chosen at random: per hidden unit, two of its incoming
kernel weights (the paper's control trains two random parameters per channel), BN frozen at
scale 1, offset 0. A mask is 1.0 where a parameter trains and 0.0 where it stays frozen.
"""

from __future__ import annotations

import numpy as np

from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
STREAM = 0xB0B  # separates the mask from the weights' and the batch order's streams
PER_UNIT = 2


def trainable_mask(spec: ModelSpec, grads: Params, mode: str, seed: int) -> Params | None:
    """Mask per gradient name for ``mode`` (None: train everything)."""
    if mode == "all":
        return None
    if mode == "bn-only":
        return {k: np.full_like(v, float(k.startswith("norm_"))) for k, v in grads.items()}
    if mode != "random-subset":
        raise ValueError(f"unknown trainable mode {mode!r}")
    rng = np.random.default_rng([seed, STREAM])
    out = {k: np.zeros_like(v) for k, v in grads.items()}
    for i, width in enumerate(spec.hidden_sizes):
        kernel = out[f"dense_{i}/kernel"]
        for unit in range(width):
            rows = rng.choice(kernel.shape[0], size=PER_UNIT, replace=False)
            kernel[rows, unit] = 1.0
    return out


def trained_count(mask: Params | None, grads: Params) -> int:
    """How many scalars train under ``mask``."""
    if mask is None:
        return int(sum(v.size for v in grads.values()))
    return int(sum(float(m.sum()) for m in mask.values()))
