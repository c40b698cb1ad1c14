"""Keras's own defaults, read from its signatures, and the spec's conventions applied.

``--defaults native`` leaves a convention out of the constructor call, so Keras's own default
applies (momentum 0.99 in Keras's convention, epsilon 1e-3, Adam epsilon 1e-7 added to
``sqrt(v)``); the values reported come from ``inspect.signature`` of the installed version.
``running_var="unbiased"`` (PyTorch's convention) needs a subclass: Keras always feeds the
biased batch variance to its moving variance.
"""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

import inspect  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

from harness.specs import ModelSpec, TrainSpec  # noqa: E402


def default(obj: Any, name: str) -> Any:
    """The default value of parameter ``name`` in ``obj``'s signature."""
    return inspect.signature(obj).parameters[name].default


@keras.saving.register_keras_serializable(package="harness")
class UnbiasedRunningVarBatchNormalization(layers.BatchNormalization):
    """Keras BN whose moving variance averages the *unbiased* batch variance (PyTorch's):
    after Keras's update (weight ``1 - momentum`` on the biased ``var``), ``(1 - momentum)
    var / (n - 1)`` is added, which leaves ``momentum old + (1 - momentum) n/(n-1) var``."""

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Keras's own call, then the moving variance corrected in training mode."""
        out = super().call(inputs, training=training, mask=mask)
        if training and self.trainable:
            x = ops.cast(inputs, self.moving_variance.dtype)
            n = ops.cast(ops.shape(x)[0], x.dtype)
            var = ops.var(x, axis=0)
            extra = (1.0 - self.momentum) * var / ops.maximum(n - 1.0, 1.0)
            self.moving_variance.assign(self.moving_variance + extra)
        return out


def bn_layer(spec: ModelSpec, name: str) -> layers.Layer:
    """The BN layer of ``spec``: translated momentum/epsilon, or Keras's own where native."""
    kwargs: dict[str, Any] = {"name": name}
    if "bn_momentum" not in spec.native:
        kwargs["momentum"] = 1.0 - spec.bn_momentum
    if "bn_epsilon" not in spec.native:
        kwargs["epsilon"] = spec.bn_epsilon
    if spec.running_var == "unbiased":
        return UnbiasedRunningVarBatchNormalization(**kwargs)
    return layers.BatchNormalization(**kwargs)


def conventions(spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
    """The conventions a model of ``spec`` trained with ``train`` uses (core convention)."""
    own = set(spec.native) | set(train.native)
    bn = layers.BatchNormalization
    momentum = (
        round(1.0 - default(bn, "momentum"), 12) if "bn_momentum" in own else spec.bn_momentum
    )
    epsilon = default(bn, "epsilon") if "bn_epsilon" in own else spec.bn_epsilon
    native_adam = "adam_epsilon" in own
    adam_eps = default(keras.optimizers.Adam, "epsilon") if native_adam else train.adam_epsilon
    return {
        "init": "keras default (glorot-uniform)" if spec.init == "native" else "canonical",
        "bn_momentum": float(momentum),
        "bn_epsilon": float(epsilon),
        "bn_variance": "two-pass",
        "running_var": "unbiased" if spec.running_var == "unbiased" else "biased",
        "adam_epsilon": float(adam_eps),
        "adam_epsilon_at": "sqrt(v) + eps (Keras)" if native_adam else "sqrt(v_hat) + eps",
    }
