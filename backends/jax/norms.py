"""Ghost-batch BN and GroupNorm from Flax's own normalization code (:mod:`harness.numerics.ghost`).

:class:`GhostBatchNorm` is Flax's ``nn.BatchNorm.__call__`` with the batch viewed as
``(N/g, g, C)`` and the statistics reduced over the ``g`` axis only: the same private helpers
``flax.linen.normalization._compute_stats`` and ``_normalize`` (so the per-unit ``scale`` and
``bias`` are shared by every virtual batch), the same ``batch_stats`` names (``mean``, ``var``).
The running statistics follow the stated rule: the mean over the virtual batches of their means
and unbiased variances, with Flax's momentum (weight of the old value). Variances are two-pass,
as the adapter's BatchNorm. GroupNorm is ``nn.GroupNorm``. The helpers are private to Flax (the
pinned version is in ``constraints.txt``); the conformance check ``norm-apply`` catches a change.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import normalization as flax_norm

from harness.backend import BNResult, NormCall
from harness.specs import BN_EPSILON, BN_MOMENTUM


class GhostBatchNorm(nn.Module):
    """BatchNorm over virtual batches of ``ghost_batch`` samples in training mode."""

    ghost_batch: int
    momentum: float = 1.0 - BN_MOMENTUM  # Flax's convention: the weight of the old value
    epsilon: float = BN_EPSILON

    def _normalize(self, x: jax.Array, mean: Any, var: Any, axes: tuple[int, ...]) -> jax.Array:
        feature = (x.ndim - 1,)
        init = (nn.initializers.zeros, nn.initializers.ones)
        args = (None, jnp.float32, self.epsilon, True, True, *init)
        return flax_norm._normalize(self, x, mean, var, axes, feature, *args)  # type: ignore[no-any-return]

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
        """Ghost batches in training mode, the running statistics otherwise."""
        n, c, g = x.shape[0], x.shape[1], self.ghost_batch
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
        if use_running_average:
            return self._normalize(x, ra_mean.value, ra_var.value, (0,))
        if g < 2 or n % g:
            raise ValueError(f"ghost batch {g} must be at least 2 and divide the batch of {n}")
        view = x.reshape(n // g, g, c)
        mean, var = flax_norm._compute_stats(view, (1,), None, use_fast_variance=False)
        if not self.is_initializing():
            new_mean, new_var = mean.mean(0), (var * (g / (g - 1))).mean(0)
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * new_mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * new_var
        return self._normalize(view, mean, var, (1,)).reshape(n, c)


def make_norm(
    kind: str, groups: int, ghost: int, momentum: float, eps: float, name: str
) -> nn.Module:
    """The Flax module for ``kind`` (``groupnorm`` or ``ghost-batch``); Flax momentum."""
    if kind == "groupnorm":
        return nn.GroupNorm(num_groups=groups, epsilon=eps, use_fast_variance=False, name=name)
    return GhostBatchNorm(ghost, momentum, eps, name=name)


def apply_norm(module: nn.Module, x: jax.Array, use_running_average: bool) -> jax.Array:
    """Call ``module`` (GroupNorm takes no mode) on ``x``."""
    if isinstance(module, GhostBatchNorm):
        return module(x, use_running_average)
    return module(x)  # type: ignore[no-any-return]


def norm_apply(
    x: np.ndarray, params: dict[str, np.ndarray], call: NormCall, upstream: np.ndarray, put: Any
) -> BNResult:
    """One forward/backward (``jax.vjp``); ``put`` places a float32 array on the device."""
    layer = make_norm(
        call.kind, call.groups, call.ghost_batch, 1.0 - call.momentum, call.epsilon, "norm"
    )
    ghost = call.kind == "ghost-batch"
    stats = {"mean": put(params["mean"]), "var": put(params["var"])} if ghost else {}

    def apply(xv: jax.Array, scale: jax.Array, bias: jax.Array) -> Any:
        variables = {"params": {"scale": scale, "bias": bias}, "batch_stats": stats}
        fn = lambda mdl, v: apply_norm(mdl, v, not call.training)  # noqa: E731
        return layer.apply(variables, xv, method=fn, mutable=["batch_stats"])

    primals = (put(x), put(params["scale"]), put(params["offset"]))
    out, vjp, updated = jax.vjp(apply, *primals, has_aux=True)
    grads = [np.array(v, np.float32) for v in vjp(put(upstream))]
    running = [np.zeros(0, np.float32)] * 2
    if ghost:
        running = [np.array(updated["batch_stats"][k], np.float32) for k in ("mean", "var")]
    return BNResult(np.array(out, np.float32), *grads, *running)
