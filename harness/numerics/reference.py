"""Float64 NumPy reference of one BatchNorm layer in both modes and both running-var conventions.

Training mode normalizes with the biased (two-pass) batch variance; the running statistics are
updated in the core convention (``momentum`` = weight of the new batch statistic) with the
biased (Keras/Flax) or the unbiased (PyTorch) batch variance. Eval mode normalizes with the
running statistics and leaves them unchanged. The training-mode arithmetic is
:func:`harness.reference.bn_forward` / :func:`~harness.reference.bn_backward`, shared with the
MLP reference, so the MLP and this layer can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.reference import bn_backward, bn_forward, running_update

Arrays = dict[str, np.ndarray]
QUANTITIES = ("out", "grad_x", "grad_scale", "grad_offset", "running_mean", "running_var")
"""What one BN application produces, in the order of :class:`harness.backend.BNResult`."""


@dataclass(frozen=True)
class Convention:
    """How a layer updates its statistics: new-stat weight, epsilon, unbiased running variance."""

    momentum: float = 0.1
    epsilon: float = 1e-5
    unbiased: bool = False


def _f64(value: np.ndarray) -> np.ndarray:
    return np.asarray(value, np.float64)


def batch_variance(x: np.ndarray, unbiased: bool) -> np.ndarray:
    """Two-pass per-feature variance; the unbiased one is NaN for a single sample (0/0)."""
    x = _f64(x)
    n = x.shape[0]
    squares = ((x - x.mean(0)) ** 2).sum(0)
    if not unbiased:
        return squares / n  # type: ignore[no-any-return]
    return squares / (n - 1) if n > 1 else np.full(x.shape[1], np.nan)  # type: ignore[no-any-return]


def running_stats(x: np.ndarray, params: Arrays, conv: Convention) -> tuple[np.ndarray, ...]:
    """Running mean and variance after one training-mode step on batch ``x``."""
    mean = running_update(_f64(params["mean"]), _f64(x).mean(0), conv.momentum)
    var = running_update(_f64(params["var"]), batch_variance(x, conv.unbiased), conv.momentum)
    return mean, var


def train_forward_backward(
    x: np.ndarray, params: Arrays, upstream: np.ndarray, conv: Convention
) -> Arrays:
    """Training mode: output, gradients of ``sum(out * upstream)``, updated running statistics."""
    out, cache = bn_forward(_f64(x), _f64(params["scale"]), _f64(params["offset"]), conv.epsilon)
    grad_x, grad_scale, grad_offset = bn_backward(_f64(upstream), cache)
    running_mean, running_var = running_stats(x, params, conv)
    return dict(zip(QUANTITIES, (out, grad_x, grad_scale, grad_offset, running_mean, running_var)))


def eval_forward_backward(
    x: np.ndarray, params: Arrays, upstream: np.ndarray, conv: Convention
) -> Arrays:
    """Eval mode: normalized by the running statistics, which stay unchanged."""
    inv = 1 / np.sqrt(_f64(params["var"]) + conv.epsilon)
    xhat = (_f64(x) - _f64(params["mean"])) * inv
    scale, g = _f64(params["scale"]), _f64(upstream)
    values = (
        xhat * scale + _f64(params["offset"]),
        g * scale * inv,
        (g * xhat).sum(0),
        g.sum(0),
        _f64(params["mean"]),
        _f64(params["var"]),
    )
    return dict(zip(QUANTITIES, values))


def reference(
    x: np.ndarray, params: Arrays, upstream: np.ndarray, training: bool, conv: Convention
) -> Arrays:
    """One application of the reference layer in the requested mode."""
    run = train_forward_backward if training else eval_forward_backward
    return run(x, params, upstream, conv)
