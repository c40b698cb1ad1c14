"""Ghost-batch BN and GroupNorm from Keras' own normalization ops, on every engine.

Keras 3 has no ``virtual_batch_size``. :class:`GhostBatchNormalization` is a
``keras.layers.BatchNormalization`` whose training mode views the ``(N, C)`` batch as
``(g, N/g * C)`` (column ``j * C + c`` holds unit ``c`` of virtual batch ``j``) and normalizes it
with the two-pass mean and variance over axis 0 (``keras.ops``) and
``keras.ops.batch_normalization`` (the op the Keras layer itself uses), the shared
``gamma``/``beta`` tiled per virtual batch. The moving statistics
follow the rule of :mod:`harness.numerics.ghost`: the mean over the virtual batches of their
means and unbiased variances, with the layer's momentum (Keras convention: weight of the old
value). Eval mode is the Keras layer's own. GroupNorm is ``keras.layers.GroupNormalization``.
"""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from harness.backend import BNResult, NormCall  # noqa: E402


class GhostBatchNormalization(layers.BatchNormalization):
    """``BatchNormalization`` whose training mode normalizes virtual batches of ``ghost_batch``."""

    def __init__(self, ghost_batch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ghost_batch = int(ghost_batch)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Virtual batches in training mode, the moving statistics otherwise."""
        if not (training and self.trainable):
            return super().call(inputs, training=False, mask=mask)
        n, c, g = inputs.shape[0], inputs.shape[-1], self.ghost_batch
        if n is None or g < 2 or n % g:
            raise ValueError(f"ghost batch {g} must be at least 2 and divide the batch of {n}")
        k = n // g
        view = ops.reshape(ops.transpose(ops.reshape(inputs, (k, g, c)), (1, 0, 2)), (g, k * c))
        # Two-pass, as every backend's ghost layer: ops.moments is one-pass E[x²] − E[x]² on
        # the torch engine, which loses ~1e-3 relative at g = 2 (measured by norm-apply).
        mean = ops.mean(view, axis=0)
        variance = ops.mean(ops.square(view - mean), axis=0)
        out = ops.batch_normalization(
            view,
            mean,
            variance,
            axis=-1,
            offset=ops.tile(self.beta, [k]),
            scale=ops.tile(self.gamma, [k]),
            epsilon=self.epsilon,
        )
        new_mean = ops.mean(ops.reshape(mean, (k, c)), axis=0)
        new_var = ops.mean(ops.reshape(variance, (k, c)), axis=0) * (g / (g - 1))
        for var, new in ((self.moving_mean, new_mean), (self.moving_variance, new_var)):
            var.assign(var * self.momentum + new * (1.0 - self.momentum))
        return ops.reshape(ops.transpose(ops.reshape(out, (g, k, c)), (1, 0, 2)), (n, c))

    def get_config(self) -> dict[str, Any]:
        """The layer's config plus ``ghost_batch``."""
        return {**super().get_config(), "ghost_batch": self.ghost_batch}


def make_norm(kind: str, groups: int, ghost: int, momentum: float, eps: float, name: str) -> Any:
    """The Keras layer for ``kind`` (``groupnorm`` or ``ghost-batch``); Keras momentum."""
    if kind == "groupnorm":
        return layers.GroupNormalization(groups=groups, axis=-1, epsilon=eps, name=name)
    return GhostBatchNormalization(ghost, momentum=momentum, epsilon=eps, name=name)


def _np32(value: Any) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value), np.float32)


def norm_apply(
    x: np.ndarray, params: dict[str, np.ndarray], call: NormCall, upstream: np.ndarray, grads: Any
) -> BNResult:
    """One forward/backward through ``stateless_call``; ``grads`` is the engine's autodiff."""
    layer = make_norm(
        call.kind, call.groups, call.ghost_batch, 1.0 - call.momentum, call.epsilon, "norm"
    )
    layer.build((None, x.shape[1]))
    names = {id(layer.gamma): "scale", id(layer.beta): "offset"}
    if call.kind == "ghost-batch":
        names.update({id(layer.moving_mean): "mean", id(layer.moving_variance): "var"})
    value = {key: ops.convert_to_tensor(params[n], "float32") for key, n in names.items()}
    stats = [value[id(v)] for v in layer.non_trainable_variables]
    up = ops.convert_to_tensor(upstream, "float32")

    def target(xt: Any, gamma: Any, beta: Any) -> tuple[Any, tuple[Any, ...]]:
        trainable = {id(layer.gamma): gamma, id(layer.beta): beta}
        out, new = layer.stateless_call(
            [trainable[id(v)] for v in layer.trainable_variables],
            stats,
            xt,
            **({"training": call.training} if call.kind == "ghost-batch" else {}),
        )
        return ops.sum(out * up), (out, *new)

    args = (ops.convert_to_tensor(x, "float32"), value[id(layer.gamma)], value[id(layer.beta)])
    (out, *moved), (gx, gs, go) = grads(target, args)
    moved_by = dict(zip((id(v) for v in layer.non_trainable_variables), moved, strict=True))
    running = [np.zeros(0, np.float32)] * 2
    if call.kind == "ghost-batch":
        running = [
            _np32(moved_by[id(layer.moving_mean)]),
            _np32(moved_by[id(layer.moving_variance)]),
        ]
    return BNResult(_np32(out), _np32(gx), _np32(gs), _np32(go), *running)
