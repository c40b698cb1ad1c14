"""The optional probes of the contract on JAX: loss and gradients at given canonical parameters
(with injected noise after each BN layer), and the batch statistics of every BN layer.

A functional forward over the canonical arrays with Flax's own ``nn.BatchNorm`` in training mode
(two-pass variance, as the adapter's model) applied per layer; its ``momentum=0`` running
statistics are exactly the batch mean and biased variance, which :func:`batch_statistics`
returns. Jitted once per architecture. Same module name and functions in every adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness.backends.jax.model import ACTIVATIONS, USE_FAST_VARIANCE
from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
Arrays = dict[str, jax.Array]
TRAINABLE = ("kernel", "bias", "scale", "offset")


def check_spec(spec: ModelSpec) -> None:
    """The probes cover MLPs without normalization or with BatchNorm, without dropout."""
    if spec.norm not in ("none", "batchnorm") or spec.dropout > 0 or spec.ghost_batch > 0:
        raise NotImplementedError(
            "probes support norm none/batchnorm without dropout or ghost batches only"
        )


def _norm(spec: ModelSpec, p: Arrays, i: int, h: jax.Array) -> tuple[jax.Array, Any]:
    layer = nn.BatchNorm(
        use_running_average=False,
        momentum=0.0,
        epsilon=spec.bn_epsilon,
        use_fast_variance=USE_FAST_VARIANCE,
    )
    width = h.shape[-1]
    variables = {
        "params": {"scale": p[f"norm_{i}/scale"], "bias": p[f"norm_{i}/offset"]},
        "batch_stats": {"mean": jnp.zeros(width), "var": jnp.ones(width)},
    }
    out, state = layer.apply(variables, h, mutable=["batch_stats"])
    return out, state["batch_stats"]


def forward(spec: ModelSpec, p: Arrays, x: jax.Array, noise: Arrays) -> tuple[jax.Array, Arrays]:
    """Logits in training mode and each BN input's batch mean and biased variance."""
    act = ACTIVATIONS[spec.activation]
    h, stats = x, {}
    for i in range(len(spec.hidden_sizes)):
        h = h @ p[f"dense_{i}/kernel"] + p[f"dense_{i}/bias"]
        if spec.placement == "after":
            h = act(h)
        if spec.has_norm:
            h, batch = _norm(spec, p, i, h)
            stats[f"norm_{i}/mean"], stats[f"norm_{i}/var"] = batch["mean"], batch["var"]
            if noise:
                h = h * noise[f"norm_{i}/noise_scale"] + noise[f"norm_{i}/noise_shift"]
        if spec.placement == "before":
            h = act(h)
    last = len(spec.hidden_sizes)
    return h @ p[f"dense_{last}/kernel"] + p[f"dense_{last}/bias"], stats


@functools.lru_cache(maxsize=8)
def _fns(spec: ModelSpec) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Jitted ``grads(trainable, fixed, x, y, noise)`` and ``stats(params, x)``."""

    def loss_fn(trainable: Arrays, fixed: Arrays, x: jax.Array, y: jax.Array, noise: Arrays) -> Any:
        logits, _ = forward(spec, {**fixed, **trainable}, x, noise)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, jnp.mean(jnp.argmax(logits, axis=-1) == y)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    stats_fn = lambda p, x: forward(spec, p, x, {})[1]  # noqa: E731
    return jax.jit(grad_fn), jax.jit(stats_fn)


def _arrays(arrays: Params) -> Arrays:
    return {k: jnp.asarray(np.asarray(v, np.float32)) for k, v in arrays.items()}


def loss_and_grads(
    spec: ModelSpec, params: Params, x: np.ndarray, y: np.ndarray, noise: Params | None
) -> tuple[float, float, Params]:
    """Mean cross-entropy, accuracy and the gradients of every trainable canonical array."""
    check_spec(spec)
    arrays = _arrays(params)
    trainable = {k: v for k, v in arrays.items() if k.rsplit("/", 1)[-1] in TRAINABLE}
    fixed = {k: v for k, v in arrays.items() if k not in trainable}
    grad_fn, _ = _fns(spec)
    (loss, acc), grads = grad_fn(
        trainable, fixed, jnp.asarray(x), jnp.asarray(y), _arrays(noise or {})
    )
    return float(loss), float(acc), {k: np.array(v, np.float32) for k, v in grads.items()}


def batch_statistics(spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
    """Each BN layer's input mean and biased variance over the batch ``x`` (training mode)."""
    check_spec(spec)
    stats = _fns(spec)[1](_arrays(params), jnp.asarray(x))
    return {k: np.array(v, np.float32) for k, v in stats.items()}
