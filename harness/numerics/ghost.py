"""Float64 references of ghost-batch BatchNorm and GroupNorm, one layer and the whole MLP.

**Ghost-batch BN** (Hoffer, Hubara & Soudry 2017): a batch of ``N`` samples is cut into
``N / g`` consecutive virtual batches of ``g`` samples (rows ``0..g-1``, ``g..2g-1``, ...); each
is normalized with its own mean and biased variance, then one shared ``scale`` and ``offset``
apply. ``g`` must divide ``N``. The running statistics follow one stated rule on every backend:
the new statistics are the mean over the virtual batches of their means and of their *unbiased*
variances (``g / (g - 1)`` times the biased ones, the estimate of the population variance that
inference needs), fed to the usual update ``(1 - m) * old + m * new`` (core convention). With
``g = N`` this is BatchNorm with PyTorch's running-variance rule. Eval mode is BN's: the running
statistics, unchanged.

**GroupNorm** (Wu & He 2018) on ``(N, C)`` activations: the ``C`` units of a sample are split
into ``G`` consecutive groups of ``C / G``; each group of each sample is normalized with its own
mean and biased variance, then a per-unit ``scale`` and ``offset`` apply; no running statistics,
the same in both modes.

Both reuse :func:`harness.reference.bn_forward` / :func:`~harness.reference.bn_backward` (which
normalize over axis 0 of any array) on a reshaped view, so they share BN's arithmetic.
:class:`NormReferenceMLP` is :class:`harness.reference.ReferenceMLP` with both layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.numerics.reference import QUANTITIES, Convention, eval_forward_backward
from harness.reference import ReferenceMLP, bn_backward, bn_forward, running_update

Arrays = dict[str, np.ndarray]
KINDS = ("ghost-batch", "groupnorm")


def _f64(value: Any) -> np.ndarray:
    return np.asarray(value, np.float64)


def ghost_view(x: np.ndarray, g: int) -> np.ndarray:
    """``(N, C)`` -> ``(g, N / g, C)``: axis 0 runs over the samples of one virtual batch."""
    n, c = x.shape
    if g < 2 or n % g:
        raise ValueError(f"ghost batch {g} must be at least 2 and divide the batch of {n}")
    return x.reshape(n // g, g, c).transpose(1, 0, 2)


def ghost_unview(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ghost_view`."""
    g, k, c = v.shape
    return v.transpose(1, 0, 2).reshape(g * k, c)


def ghost_forward(
    x: np.ndarray, scale: np.ndarray, offset: np.ndarray, g: int, eps: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Training-mode ghost-batch BN; returns the output and the backward cache."""
    out, cache = bn_forward(ghost_view(_f64(x), g), _f64(scale), _f64(offset), eps)
    return ghost_unview(out), cache


def ghost_backward(grad: np.ndarray, cache: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Gradients (x, scale, offset) of training-mode ghost-batch BN."""
    g = cache["xhat"].shape[0]
    dx, dscale, doffset = bn_backward(ghost_view(_f64(grad), g), cache)
    return ghost_unview(dx), dscale.sum(0), doffset.sum(0)


def ghost_statistics(cache: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The rule's new statistics: mean of the virtual batches' means and unbiased variances."""
    g = cache["xhat"].shape[0]
    return cache["mean"].mean(0), (cache["var"] * g / (g - 1)).mean(0)


def group_view(x: np.ndarray, groups: int) -> np.ndarray:
    """``(N, C)`` -> ``(C / G, N, G)``: axis 0 runs over the units of one group of one sample."""
    n, c = x.shape
    if groups < 1 or c % groups:
        raise ValueError(f"{groups} groups must divide the {c} units")
    return x.reshape(n, groups, c // groups).transpose(2, 0, 1)


def group_unview(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`group_view`."""
    size, n, groups = v.shape
    return v.transpose(1, 2, 0).reshape(n, groups * size)


def group_forward(
    x: np.ndarray, scale: np.ndarray, offset: np.ndarray, groups: int, eps: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """GroupNorm (either mode); returns the output and the backward cache."""
    ones = np.ones(1)
    xhat, cache = bn_forward(group_view(_f64(x), groups), ones, 0 * ones, eps)
    xhat = group_unview(xhat)
    return xhat * _f64(scale) + _f64(offset), {**cache, "x_hat": xhat, "gn_scale": _f64(scale)}


def group_backward(grad: np.ndarray, cache: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Gradients (x, scale, offset) of GroupNorm."""
    grad = _f64(grad)
    groups = cache["xhat"].shape[2]
    dxhat = group_view(grad * cache["gn_scale"], groups)
    dx, _, _ = bn_backward(dxhat, cache)
    return group_unview(dx), (grad * cache["x_hat"]).sum(0), grad.sum(0)


def norm_reference(x: np.ndarray, params: Arrays, upstream: np.ndarray, call: Any) -> Arrays:
    """One application of ghost-batch BN or GroupNorm (``call``: a ``NormCall``).

    Returns :data:`harness.numerics.reference.QUANTITIES`; GroupNorm's running statistics are
    empty arrays.
    """
    if call.kind == "groupnorm":
        out, cache = group_forward(x, params["scale"], params["offset"], call.groups, call.epsilon)
        grads = group_backward(upstream, cache)
        return dict(zip(QUANTITIES, (out, *grads, np.zeros(0), np.zeros(0))))
    if call.kind != "ghost-batch":
        raise ValueError(f"unknown norm kind {call.kind!r} (valid: {', '.join(KINDS)})")
    if not call.training:
        conv = Convention(call.momentum, call.epsilon)
        return eval_forward_backward(x, params, upstream, conv)
    out, cache = ghost_forward(x, params["scale"], params["offset"], call.ghost_batch, call.epsilon)
    mean, var = ghost_statistics(cache)
    running = [
        running_update(_f64(params[k]), v, call.momentum) for k, v in (("mean", mean), ("var", var))
    ]
    return dict(zip(QUANTITIES, (out, *ghost_backward(upstream, cache), *running)))


class NormReferenceMLP(ReferenceMLP):
    """:class:`ReferenceMLP` that also builds GroupNorm and ghost-batch BN layers."""

    def _norm(
        self, i: int, z: np.ndarray, training: bool, update: bool, cache: dict[str, Any]
    ) -> np.ndarray:
        spec, p = self.spec, self.params
        if spec.norm not in ("groupnorm", "batchnorm"):
            return super()._norm(i, z, training, update, cache)
        scale, offset = p[f"norm_{i}/scale"], p[f"norm_{i}/offset"]
        if spec.norm == "groupnorm":
            out, cache["gn"] = group_forward(z, scale, offset, spec.norm_groups, spec.bn_epsilon)
            return out
        if spec.norm != "batchnorm" or spec.ghost_batch <= 0 or not training:
            return super()._norm(i, z, training, update, cache)
        out, cache["ghost"] = ghost_forward(z, scale, offset, spec.ghost_batch, spec.bn_epsilon)
        if update:
            mean, var = ghost_statistics(cache["ghost"])
            m = spec.bn_momentum
            p[f"norm_{i}/mean"] = running_update(p[f"norm_{i}/mean"], mean, m)
            p[f"norm_{i}/var"] = running_update(p[f"norm_{i}/var"], var, m)
        return out

    def _norm_backward(
        self, i: int, g: np.ndarray, cache: dict[str, Any], grads: dict[str, np.ndarray]
    ) -> np.ndarray:
        if "gn" in cache:
            dx, grads[f"norm_{i}/scale"], grads[f"norm_{i}/offset"] = group_backward(g, cache["gn"])
            return dx
        if "ghost" in cache:
            dx, grads[f"norm_{i}/scale"], grads[f"norm_{i}/offset"] = ghost_backward(
                g, cache["ghost"]
            )
            return dx
        return super()._norm_backward(i, g, cache, grads)
