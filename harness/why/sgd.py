"""The core's SGD loop over a backend's ``loss_and_grads``, and BN statistics recomputed after
training (precise BN) from its ``batch_statistics``.

The update is torch.optim's SGD with momentum in float32 NumPy (``v = m * v + g``,
``p -= lr * v``), gradients multiplied by the trainable mask, so masks and injected noise are
the same arrays on every backend and only the backends' forward/backward numerics differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.backend import Backend
from harness.specs import ModelSpec

Params = dict[str, np.ndarray]


@dataclass
class CoreSGD:
    """Parameters, momentum buffers and mask of one training run driven by the core."""

    backend: Backend
    spec: ModelSpec
    params: Params
    lr: float
    momentum: float
    mask: Params | None = None
    velocity: Params = field(default_factory=dict)

    def grads(self, params: Params, x: np.ndarray, y: np.ndarray, noise: Params | None) -> Any:
        """``(loss, acc, grads)`` at ``params``, the gradients masked."""
        loss, acc, grads = self.backend.loss_and_grads(self.spec, params, x, y, noise)
        if self.mask is not None:
            grads = {k: g * self.mask[k] for k, g in grads.items()}
        return loss, acc, grads

    def proposal(self, grads: Params) -> tuple[Params, Params]:
        """The parameters and momentum buffers one step with ``grads`` would give."""
        velocity = {
            k: (self.momentum * self.velocity[k] + g if k in self.velocity else g.copy())
            for k, g in grads.items()
        }
        params = dict(self.params)
        for k, v in velocity.items():
            params[k] = (self.params[k] - np.float32(self.lr) * v).astype(np.float32)
        return params, velocity

    def commit(self, params: Params, velocity: Params) -> None:
        """Take the step :meth:`proposal` computed."""
        self.params, self.velocity = params, velocity


def precise_statistics(
    backend: Backend, spec: ModelSpec, params: Params, x: np.ndarray, batch: int, batches: int
) -> Params:
    """BN statistics recomputed over ``batches`` consecutive training batches of size ``batch``.

    Each BN layer's mean is the average of its batch means; its variance the average of the
    per-batch *unbiased* variances (biased × B/(B−1)), an unbiased estimate of the population
    variance whatever the batch size. Every layer sees batch-normalized inputs from the layers
    before it, as in training (fvcore's ``update_bn_stats``, Wu & Johnson 2021).
    """
    count = max(1, min(batches, len(x) // batch))
    sums: Params = {}
    for k in range(count):
        stats = backend.batch_statistics(spec, params, x[k * batch : (k + 1) * batch])
        for name, value in stats.items():
            value = np.asarray(value, np.float64)
            if name.endswith("/var") and batch > 1:
                value = value * batch / (batch - 1)
            sums[name] = sums.get(name, 0.0) + value
    return {name: (total / count).astype(np.float32) for name, total in sums.items()}


def evaluate_precise(
    backend: Backend, model: Any, sgd: CoreSGD, data: Any, batch: int, batches: int
) -> tuple[float, float]:
    """Validation loss and accuracy in eval mode, BN statistics recomputed (precise) first."""
    params = sgd.params
    if sgd.spec.norm == "batchnorm":
        stats = precise_statistics(backend, sgd.spec, params, data.x_train, batch, batches)
        params = {**params, **stats}
    backend.set_params(model, params)
    return backend.evaluate(model, data.x_val, data.y_val)
