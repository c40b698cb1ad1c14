"""The canonical initial weights and per-epoch batch order, drawn with seeded NumPy.

Every backend starts from these arrays and visits the samples in this order, so two backends
differ only by their numerics. Layout (one array per name):
``dense_{i}/kernel`` (in, out), ``dense_{i}/bias``, ``norm_{i}/scale``, ``norm_{i}/offset``,
``norm_{i}/mean``, ``norm_{i}/var`` (the last two only for batchnorm).
"""

from __future__ import annotations

import numpy as np

from harness.specs import ModelSpec

Params = dict[str, np.ndarray]


def kernel_bound(fan_in: int, fan_out: int, activation: str) -> float:
    """Uniform bound: He for ReLU (gain 2 / fan_in), Glorot for saturating activations."""
    if activation == "relu":
        return float(np.sqrt(6.0 / fan_in))
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def canonical_params(spec: ModelSpec, seed: int) -> Params:
    """Draw the canonical parameter set for ``spec`` from ``seed``.

    Dense kernels are drawn from the same stream whatever the norm, so a model with BN and one
    without share identical Dense weights; ``init_scale`` multiplies every kernel.
    """
    rng = np.random.default_rng([seed, 7919])
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(spec.layer_sizes()):
        bound = kernel_bound(fan_in, fan_out, spec.activation)
        kernel = rng.uniform(-bound, bound, size=(fan_in, fan_out)) * spec.init_scale
        params[f"dense_{i}/kernel"] = kernel.astype(np.float32)
        params[f"dense_{i}/bias"] = np.zeros(fan_out, np.float32)
    for i, width in enumerate(spec.hidden_sizes):
        if spec.norm == "none":
            continue
        params[f"norm_{i}/scale"] = np.ones(width, np.float32)
        params[f"norm_{i}/offset"] = np.zeros(width, np.float32)
        if spec.norm == "batchnorm":
            params[f"norm_{i}/mean"] = np.zeros(width, np.float32)
            params[f"norm_{i}/var"] = np.ones(width, np.float32)
    return params


def batch_order(n: int, batch_size: int, epochs: int, seed: int) -> np.ndarray:
    """Sample indices of shape ``(epochs, steps, batch_size)``; the last partial batch is dropped.

    Dropping it keeps every step the same shape, so compiled steps (XLA, ``jit``) compile once.
    """
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the {n} training samples")
    steps = n // batch_size
    order = np.empty((epochs, steps, batch_size), np.int32)
    for epoch in range(epochs):
        perm = np.random.default_rng([seed, 104729, epoch]).permutation(n)
        order[epoch] = perm[: steps * batch_size].reshape(steps, batch_size)
    return order


def param_count(params: Params, trainable_only: bool = False) -> int:
    """Number of scalars; running statistics excluded when ``trainable_only``."""
    skip = ("/mean", "/var") if trainable_only else ()
    return int(sum(v.size for k, v in params.items() if not k.endswith(skip)))
