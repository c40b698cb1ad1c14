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
from typing import Any

import numpy as np

from harness.reference import (
    ACT,
    ReferenceMLP,
    bn_backward,
    bn_forward,
    running_update,
    softmax_xent,
)
from harness.specs import BN_EPSILON, BN_MOMENTUM, ModelSpec

Arrays = dict[str, np.ndarray]
Trace = dict[str, Any]
"""A trace: arrays by name, plus float64 scalars (the loss, condition numbers ``kappa/...``)."""
QUANTITIES = ("out", "grad_x", "grad_scale", "grad_offset", "running_mean", "running_var")
"""What one BN application produces, in the order of :class:`harness.backend.BNResult`."""


@dataclass(frozen=True)
class Convention:
    """How a layer updates its statistics: new-stat weight, epsilon, unbiased running variance."""

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON
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


def trace_layers(spec: ModelSpec) -> list[str]:
    """The MLP's layers in forward order as :meth:`Backend.trace_step` names them: ``dense_i``,
    ``norm_i`` (with a norm) and ``act_i`` per hidden block, then ``dense_{last}`` (logits)."""
    names: list[str] = []
    for i in range(len(spec.hidden_sizes)):
        block = [f"dense_{i}", f"act_{i}"]
        if spec.has_norm:
            block.insert(1 if spec.placement == "before" else 2, f"norm_{i}")
        names += block
    return [*names, f"dense_{len(spec.hidden_sizes)}"]


def kappa(terms_abs: np.ndarray, total: np.ndarray) -> np.float64:
    """Condition number of a sum under the max-norm, ``max sum|t| / max|sum t|``, at least 1."""
    return np.float64(
        max(1.0, float(np.max(terms_abs)) / max(float(np.max(np.abs(total))), 1e-300))
    )


def _mean_std(x: np.ndarray) -> np.float64:
    """Largest per-feature |mean|/std of a normalization layer's input, at least 1."""
    ratio = np.abs(x.mean(0)) / np.maximum(x.std(0), 1e-300)
    return np.float64(max(1.0, float(ratio.max())))


def _forward(ref: ReferenceMLP, x: np.ndarray, out: Trace) -> list[dict[str, Any]]:
    """Every layer's training-mode output (and its condition number) into ``out``."""
    logits, caches = ref.forward(x, training=True, update=True)
    hidden, spec = len(caches) - 1, ref.spec
    for i, cache in enumerate(caches):
        h, w, b = cache["in"], ref.params[f"dense_{i}/kernel"], ref.params[f"dense_{i}/bias"]
        dense = h @ w + b
        out[f"dense_{i}/out"] = logits if i == hidden else dense
        out[f"kappa/dense_{i}/out"] = kappa(np.abs(h) @ np.abs(w) + np.abs(b), dense)
        if i == hidden:
            break
        out[f"act_{i}/out"] = cache["a"]
        if spec.has_norm:
            before = spec.placement == "before"
            out[f"norm_{i}/out"] = cache["z"] if before else caches[i + 1]["in"]
            out[f"kappa/norm_{i}/out"] = _mean_std(dense if before else cache["a"])
            for stat in ("mean", "var"):
                out[f"kappa/norm_{i}/{stat}"] = out[f"kappa/norm_{i}/out"]
    return caches


def _param_grads(out: Trace, layer: str, h: np.ndarray, g: np.ndarray) -> None:
    out[f"{layer}/grad_kernel"], out[f"{layer}/grad_bias"] = h.T @ g, g.sum(0)
    out[f"kappa/{layer}/grad_kernel"] = kappa(np.abs(h).T @ np.abs(g), h.T @ g)
    out[f"kappa/{layer}/grad_bias"] = kappa(np.abs(g).sum(0), g.sum(0))


def _norm_grads(
    ref: ReferenceMLP, i: int, g: np.ndarray, cache: dict[str, Any], out: Trace
) -> Any:
    grads: Arrays = {}
    dx = ref._norm_backward(i, g, cache, grads)
    out[f"norm_{i}/grad_scale"], out[f"norm_{i}/grad_offset"] = (
        grads[f"norm_{i}/scale"],
        grads[f"norm_{i}/offset"],
    )
    xhat = cache["bn"]["xhat"] if "bn" in cache else cache["ln"]["xhat"].T
    out[f"kappa/norm_{i}/grad_scale"] = kappa(np.abs(g * xhat).sum(0), (g * xhat).sum(0))
    out[f"kappa/norm_{i}/grad_offset"] = kappa(np.abs(g).sum(0), g.sum(0))
    return dx


def _backward(ref: ReferenceMLP, caches: list[dict[str, Any]], y: np.ndarray, out: Trace) -> None:
    """Gradient of the loss w.r.t. every layer output, and every parameter gradient."""
    hidden, spec = len(caches) - 1, ref.spec
    loss, g = softmax_xent(out[f"dense_{hidden}/out"], y)
    out["loss"] = np.float64(loss)
    _, dact = ACT[spec.activation]
    for i in reversed(range(hidden + 1)):
        cache = caches[i]
        if i < hidden:
            after = spec.has_norm and spec.placement == "after"
            if after:
                out[f"norm_{i}/grad"] = g
                g = _norm_grads(ref, i, g, cache, out)
            out[f"act_{i}/grad"] = g
            g = g * dact(cache["z"], cache["a"])
            if spec.has_norm and not after:
                out[f"norm_{i}/grad"] = g
                g = _norm_grads(ref, i, g, cache, out)
        out[f"dense_{i}/grad"] = g
        _param_grads(out, f"dense_{i}", cache["in"], g)
        w = ref.params[f"dense_{i}/kernel"]
        g = g @ w.T


def trace_reference(
    spec: ModelSpec, params: Arrays, x: np.ndarray, y: np.ndarray, unbiased: bool = False
) -> Arrays:
    """One float64 training step of the MLP, traced like :meth:`Backend.trace_step`.

    Keys: ``{layer}/out``, ``{layer}/grad`` (of the mean cross-entropy w.r.t. that output),
    ``dense_i/grad_kernel|grad_bias``, ``norm_i/grad_scale|grad_offset``, ``norm_i/mean|var``
    after the step (``unbiased``: PyTorch's running-variance rule), ``loss``, and
    ``kappa/{key}``: the condition number of that quantity's last reduction.
    """
    ref = ReferenceMLP(spec, params, unbiased_running_var=unbiased)
    out: Arrays = {}
    caches = _forward(ref, np.asarray(x, np.float64), out)
    _backward(ref, caches, np.asarray(y), out)
    for name in (n for n in ref.params if n.endswith(("/mean", "/var"))):
        out[name] = ref.params[name]
    return out
