"""One traced training step of a Flax MLP: every layer's output passed through ``Module.perturb``
so ``jax.grad`` gives the gradient of the loss w.r.t. it, with the parameter gradients and the
BN statistics after the step. The layers are the adapter's (``nn.Dense``, ``nn.BatchNorm``,
named as in :mod:`harness.backends.jax.model`); ``native`` uses Flax's own BN settings."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness.backends.jax.model import ACTIVATIONS, USE_FAST_VARIANCE, from_canonical
from harness.numerics.difftest import layer_spec
from harness.numerics.reference import trace_layers
from harness.specs import ModelSpec

Arrays = dict[str, np.ndarray]
NATIVE = (0.01, 1e-5)
"""``nn.BatchNorm``'s own momentum 0.99 (core convention 0.01) and epsilon (and, native, its
one-pass ``use_fast_variance=True``)."""


class TraceMLP(nn.Module):
    """The adapter's MLP with each layer's output perturbed (zero) and sown."""

    spec: ModelSpec
    fast_variance: bool = USE_FAST_VARIANCE

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits in training mode (batch statistics, running averages updated)."""
        spec = self.spec
        for name in trace_layers(spec):
            kind, index = name.split("_")
            if kind == "dense":
                x = nn.Dense(spec.layer_sizes()[int(index)][1], name=name)(x)
            elif kind == "norm":
                x = nn.BatchNorm(
                    use_running_average=False,
                    momentum=1.0 - spec.bn_momentum,
                    epsilon=spec.bn_epsilon,
                    use_fast_variance=self.fast_variance,
                    name=name,
                )(x)
            else:
                x = ACTIVATIONS[spec.activation](x)
            x = self.perturb(f"out_{name}", x)
            self.sow("intermediates", f"out_{name}", x)
        return x


def _np(value: Any) -> np.ndarray:
    return np.array(value, np.float64)


def trace_step(
    spec: ModelSpec,
    params: Arrays,
    x: np.ndarray,
    y: np.ndarray,
    device: Any,
    native: bool = False,
    mutate: str = "",
) -> Arrays:
    """See :meth:`harness.backend.Backend.trace_step` (``running_var`` is not offered here)."""
    if mutate == "running_var":
        raise ValueError("flax has no switch for the variance fed to the running average")
    if spec.norm == "layernorm":
        raise ValueError("the jax trace covers BatchNorm and no norm")
    spec = layer_spec(spec, NATIVE if native else None, mutate)
    module = TraceMLP(spec, fast_variance=True if native else USE_FAST_VARIANCE)
    xt = jax.device_put(np.asarray(x, np.float32), device)
    yt = jax.device_put(np.asarray(y, np.int32), device)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), xt)
    tree, stats = from_canonical(
        params, dict(shapes["params"]), dict(shapes.get("batch_stats", {})), device
    )
    perturb = jax.tree_util.tree_map(jnp.zeros_like, shapes["perturbations"])

    def loss_fn(p: Any, dp: Any) -> Any:
        variables = {"params": p, "batch_stats": stats, "perturbations": dp}
        logits, new = module.apply(variables, xt, mutable=["batch_stats", "intermediates"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yt).mean()
        return loss, (loss, new)

    grads, (loss, new) = jax.grad(loss_fn, argnums=(0, 1), has_aux=True)(tree, perturb)
    return _collect(spec, loss, new, grads)


def _collect(spec: ModelSpec, loss: Any, new: Any, grads: Any) -> Arrays:
    """Canonical names for what :func:`trace_step` computed."""
    g_params, g_out = grads
    result: Arrays = {"loss": _np(loss)}
    for name in trace_layers(spec):
        result[f"{name}/out"] = _np(new["intermediates"][f"out_{name}"][0])
        result[f"{name}/grad"] = _np(g_out[f"out_{name}"])
    leaves = {"kernel": "grad_kernel", "bias": "grad_bias", "scale": "grad_scale"}
    for layer, values in g_params.items():
        for leaf, value in values.items():
            key = "grad_offset" if layer.startswith("norm") and leaf == "bias" else leaves[leaf]
            result[f"{layer}/{key}"] = _np(value)
    for layer, values in new.get("batch_stats", {}).items():
        result[f"{layer}/mean"], result[f"{layer}/var"] = _np(values["mean"]), _np(values["var"])
    return result
