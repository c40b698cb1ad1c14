"""Flax's and optax's own defaults, read from their signatures, and the spec's conventions.

``--defaults native`` leaves a convention out of the constructor call, so Flax's own default
applies (momentum 0.99 in Flax's convention, epsilon 1e-5, the one-pass variance
``use_fast_variance=True``; optax's Adam epsilon 1e-8); the values reported come from
``inspect.signature`` of the installed versions. ``running_var="unbiased"`` (PyTorch's
convention) is applied after Flax's update: Flax always feeds the biased batch variance.
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from harness.specs import ModelSpec, TrainSpec

USE_FAST_VARIANCE = False
"""The adapter's choice when the variance formula is mapped: two-pass ``E[(x - E[x])^2]``, as
torch and Keras compute it; Flax's default ``E[x^2] - E[x]^2`` cancels when |mean| >> std."""


def default(obj: Any, name: str) -> Any:
    """The default value of parameter ``name`` in ``obj``'s signature."""
    return inspect.signature(obj).parameters[name].default


def bn_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """Keyword arguments of ``nn.BatchNorm`` for ``spec``: Flax's momentum is the weight of
    the *old* running value (the core's ``1 - m``); native conventions are left out."""
    kwargs: dict[str, Any] = {}
    if "bn_momentum" not in spec.native:
        kwargs["momentum"] = 1.0 - spec.bn_momentum
    if "bn_epsilon" not in spec.native:
        kwargs["epsilon"] = spec.bn_epsilon
    if "bn_variance" not in spec.native:
        kwargs["use_fast_variance"] = USE_FAST_VARIANCE
    return kwargs


def unbiased_running_var(bn: nn.BatchNorm, x: jax.Array) -> None:
    """Add ``(1 - momentum) var / (n - 1)`` to the running variance Flax just updated with the
    biased batch variance ``var``: the result averages the unbiased one (PyTorch's)."""
    if not bn.is_mutable_collection("batch_stats") or x.shape[0] < 2:
        return
    var = jnp.var(x.astype(jnp.float32), axis=0)
    ra = bn.get_variable("batch_stats", "var")
    bn.put_variable("batch_stats", "var", ra + (1.0 - bn.momentum) * var / (x.shape[0] - 1))


def adam(spec: TrainSpec, learning_rate: Any) -> optax.GradientTransformation:
    """optax's Adam with the spec's constants; its own epsilon when that is native."""
    eps = default(optax.adam, "eps") if "adam_epsilon" in spec.native else spec.adam_epsilon
    return optax.adam(learning_rate, b1=spec.adam_beta1, b2=spec.adam_beta2, eps=eps)


def conventions(spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
    """The conventions a model of ``spec`` trained with ``train`` uses (core convention)."""
    own = set(spec.native) | set(train.native)
    momentum = round(1.0 - default(nn.BatchNorm, "momentum"), 12) if "bn_momentum" in own else None
    fast = default(nn.BatchNorm, "use_fast_variance") if "bn_variance" in own else False
    eps = default(optax.adam, "eps") if "adam_epsilon" in own else train.adam_epsilon
    return {
        "init": "flax default (lecun-normal)" if spec.init == "native" else "canonical",
        "bn_momentum": float(momentum if momentum is not None else spec.bn_momentum),
        "bn_epsilon": float(
            default(nn.BatchNorm, "epsilon") if "bn_epsilon" in own else spec.bn_epsilon
        ),
        "bn_variance": "one-pass E[x^2]-E[x]^2" if fast else "two-pass",
        "running_var": "unbiased" if spec.running_var == "unbiased" else "biased",
        "adam_epsilon": float(eps),
        "adam_epsilon_at": "sqrt(v_hat) + eps",
    }
