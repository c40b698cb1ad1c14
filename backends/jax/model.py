"""Flax linen MLP construction and the canonical parameter mapping.

Submodules are named like the canonical layout (``dense_{i}``, ``norm_{i}``), so the mapping is a
rename of the leaves only: Flax's ``bias`` of a norm layer is the canonical ``offset``, and the
BatchNorm running statistics live in the separate ``batch_stats`` collection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from harness.backends.jax.conventions import USE_FAST_VARIANCE, bn_kwargs, unbiased_running_var
from harness.backends.jax.norms import apply_norm, make_norm
from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
Tree = dict[str, Any]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "sigmoid": nn.sigmoid,
    "tanh": nn.tanh,
}


class MLP(nn.Module):
    """Dense -> [norm] -> activation (or activation -> norm) -> [dropout], then a Dense head.

    ``use_running_average`` selects BatchNorm's running statistics (eval) over batch statistics;
    ``deterministic`` turns dropout off. The two are separate so that train-mode evaluation can
    normalize with batch statistics without dropping units, as the torch adapter does.
    """

    spec: ModelSpec

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool, deterministic: bool) -> jax.Array:
        """Logits for a batch of flattened inputs."""
        spec = self.spec
        for i, width in enumerate(spec.hidden_sizes):
            x = nn.Dense(width, name=f"dense_{i}")(x)
            if spec.has_norm and spec.placement == "before":
                x = self._norm(i, x, use_running_average)
            x = ACTIVATIONS[spec.activation](x)
            if spec.has_norm and spec.placement == "after":
                x = self._norm(i, x, use_running_average)
            if spec.dropout > 0:
                x = nn.Dropout(spec.dropout, deterministic=deterministic)(x)
        return nn.Dense(spec.num_classes, name=f"dense_{len(spec.hidden_sizes)}")(x)

    def _norm(self, i: int, x: jax.Array, use_running_average: bool) -> jax.Array:
        spec = self.spec
        if spec.features:  # GroupNorm or ghost-batch BN (norms.py); Flax momentum is 1 - m
            kind, groups, ghost = spec.features[0], spec.norm_groups, spec.ghost_batch
            momentum, eps = 1.0 - spec.bn_momentum, spec.bn_epsilon
            norm = make_norm(kind, groups, ghost, momentum, eps, f"norm_{i}")
            return apply_norm(norm, x, use_running_average)
        if spec.norm == "layernorm":
            return nn.LayerNorm(
                epsilon=spec.bn_epsilon, use_fast_variance=USE_FAST_VARIANCE, name=f"norm_{i}"
            )(x)
        bn = nn.BatchNorm(
            use_running_average=use_running_average, name=f"norm_{i}", **bn_kwargs(spec)
        )
        out = bn(x)
        if spec.running_var == "unbiased" and not use_running_average:
            unbiased_running_var(bn, x)
        return out


@dataclass
class JaxModel:
    """The mutable handle a JAX "model" is: the module plus its current variables.

    Flax modules are stateless, so training replaces ``params``/``batch_stats`` (and keeps the
    optimizer state of the last :meth:`JaxBackend.train` call in ``opt_state``).
    """

    spec: ModelSpec
    module: MLP
    params: Tree
    batch_stats: Tree
    opt_state: Any = None

    @property
    def variables(self) -> Tree:
        """The ``{"params", "batch_stats"}`` dict that ``module.apply`` takes."""
        return {"params": self.params, "batch_stats": self.batch_stats}


def _init_fn(module: MLP) -> Callable[[jax.Array], Any]:
    dummy = jnp.zeros((1, module.spec.input_size), jnp.float32)
    return lambda key: module.init(key, dummy, use_running_average=True, deterministic=True)


def native_variables(module: MLP, seed: int) -> tuple[Tree, Tree]:
    """Flax's own default initializers (lecun-normal kernels, zero biases) from ``seed``.

    Jitted: run eagerly, ``init`` compiles every small op separately (~1.5 s on a CPU).
    """
    variables = jax.jit(_init_fn(module))(jax.random.PRNGKey(seed))
    return dict(variables["params"]), dict(variables.get("batch_stats", {}))


def variable_shapes(module: MLP) -> tuple[Tree, Tree]:
    """The ``params``/``batch_stats`` trees as shapes only (no computation)."""
    variables = jax.eval_shape(_init_fn(module), jax.random.PRNGKey(0))
    return dict(variables["params"]), dict(variables.get("batch_stats", {}))


def _np(value: Any) -> np.ndarray:
    # An explicit copy: a zero-copy view of a device buffer would break once it is donated.
    return np.array(value, dtype=np.float32, copy=True)


def to_canonical(params: Tree, batch_stats: Tree) -> Params:
    """Canonical layout from Flax ``params`` and ``batch_stats`` (float32 NumPy copies)."""
    out: Params = {}
    for name in sorted(n for n in params if n.startswith("dense_")):
        out[f"{name}/kernel"] = _np(params[name]["kernel"])
        out[f"{name}/bias"] = _np(params[name]["bias"])
    for name in sorted(n for n in params if n.startswith("norm_")):
        out[f"{name}/scale"] = _np(params[name]["scale"])
        out[f"{name}/offset"] = _np(params[name]["bias"])
        if name in batch_stats:
            out[f"{name}/mean"] = _np(batch_stats[name]["mean"])
            out[f"{name}/var"] = _np(batch_stats[name]["var"])
    return out


def _leaf(canonical: Params, key: str, like: Any, device: Any) -> jax.Array:
    value = np.array(canonical[key], dtype=np.float32, copy=True)
    if value.shape != tuple(like.shape):
        raise ValueError(f"{key}: shape {value.shape}, model expects {tuple(like.shape)}")
    return jax.device_put(value, device)


def _canonical_key(layer: str, leaf: str) -> str:
    return f"{layer}/offset" if layer.startswith("norm_") and leaf == "bias" else f"{layer}/{leaf}"


def from_canonical(
    canonical: Params, params: Tree, batch_stats: Tree, device: Any
) -> tuple[Tree, Tree]:
    """New Flax trees shaped like ``params``/``batch_stats`` holding the canonical arrays."""
    new_params = {
        layer: {
            leaf: _leaf(canonical, _canonical_key(layer, leaf), like, device)
            for leaf, like in leaves.items()
        }
        for layer, leaves in params.items()
    }
    new_stats = {
        layer: {leaf: _leaf(canonical, f"{layer}/{leaf}", like, device) for leaf, like in s.items()}
        for layer, s in batch_stats.items()
    }
    return new_params, new_stats
