"""Keras MLP construction and the canonical parameter mapping (every engine).

The model is a plain ``keras.Sequential`` of real Keras layers named ``dense_{i}`` and
``norm_{i}``, so the canonical names map one to one onto layer names.
"""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from harness.backends.keras.conventions import bn_layer  # noqa: E402
from harness.backends.keras.norms import make_norm  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402

Params = dict[str, np.ndarray]
NORM_TYPES = (layers.BatchNormalization, layers.LayerNormalization, layers.GroupNormalization)


def keras_momentum(momentum: float) -> float:
    """Core convention (weight of the new batch statistic, torch 0.1) -> Keras (0.9)."""
    return 1.0 - momentum


def _norm(spec: ModelSpec, i: int) -> layers.Layer:
    if spec.features:  # GroupNorm or ghost-batch BN (norms.py)
        momentum, groups = keras_momentum(spec.bn_momentum), spec.norm_groups
        kind, ghost, eps = spec.features[0], spec.ghost_batch, spec.bn_epsilon
        return make_norm(kind, groups, ghost, momentum, eps, f"norm_{i}")
    if spec.norm == "layernorm":
        return layers.LayerNormalization(epsilon=spec.bn_epsilon, name=f"norm_{i}")
    return bn_layer(spec, f"norm_{i}")


def _hidden_block(spec: ModelSpec, i: int, width: int) -> list[layers.Layer]:
    block: list[layers.Layer] = [
        layers.Dense(width, name=f"dense_{i}"),
        layers.Activation(spec.activation, name=f"act_{i}"),
    ]
    if spec.has_norm:
        block.insert(1 if spec.placement == "before" else 2, _norm(spec, i))
    if spec.dropout > 0:
        block.append(layers.Dropout(spec.dropout, name=f"dropout_{i}"))
    return block


def build_mlp(spec: ModelSpec) -> keras.Sequential:
    """Dense -> [norm] -> activation (or activation -> norm) -> [dropout], then a Dense head.

    Weights come from Keras' own default initializers (Glorot-uniform kernels, zero biases);
    seed them with ``keras.utils.set_random_seed`` before calling.
    """
    body: list[layers.Layer] = []
    for i, width in enumerate(spec.hidden_sizes):
        body.extend(_hidden_block(spec, i, width))
    body.append(layers.Dense(spec.num_classes, name=f"dense_{len(spec.hidden_sizes)}"))
    return keras.Sequential([keras.Input(shape=(spec.input_size,), name="x"), *body], name="mlp")


def dense_layers(model: keras.Model) -> list[layers.Dense]:
    """The Dense layers, output layer last."""
    return [layer for layer in model.layers if isinstance(layer, layers.Dense)]


def norm_layers(model: keras.Model) -> list[layers.Layer]:
    """The normalization layers of the hidden blocks (empty without normalization)."""
    return [layer for layer in model.layers if isinstance(layer, NORM_TYPES)]


def _norm_vars(norm: layers.Layer) -> dict[str, keras.Variable]:
    out = {"scale": norm.gamma, "offset": norm.beta}
    if isinstance(norm, layers.BatchNormalization):
        out.update(mean=norm.moving_mean, var=norm.moving_variance)
    return out


def param_vars(model: keras.Model) -> dict[str, keras.Variable]:
    """Canonical name -> Keras variable (kernels are (in, out) in both layouts)."""
    out: dict[str, keras.Variable] = {}
    for i, dense in enumerate(dense_layers(model)):
        out[f"dense_{i}/kernel"] = dense.kernel
        out[f"dense_{i}/bias"] = dense.bias
    for i, norm in enumerate(norm_layers(model)):
        out.update({f"norm_{i}/{k}": v for k, v in _norm_vars(norm).items()})
    return out


def get_params(model: keras.Model) -> Params:
    """The model's variables as float32 NumPy copies in the canonical layout."""
    return {
        name: np.array(ops.convert_to_numpy(var.value), np.float32)
        for name, var in param_vars(model).items()
    }


def set_params(model: keras.Model, params: Params) -> None:
    """Assign canonical arrays to the model's variables (shapes must match)."""
    for name, var in param_vars(model).items():
        var.assign(np.asarray(params[name], dtype=var.dtype))


def forward(model: keras.Model, x: Any, training: bool, norms_only: bool = False) -> Any:
    """Logits; ``norms_only`` puts only the norm layers in training mode (no dropout)."""
    for layer in model.layers:
        mode = training and (not norms_only or isinstance(layer, NORM_TYPES))
        x = layer(x, training=mode)
    return x


def pre_activations(model: keras.Model, x: Any, layer: int) -> Any:
    """Input of hidden layer ``layer``'s activation (the BN paper's Figure 1 quantity)."""
    for module in model.layers:
        if module.name == f"act_{layer}":
            return x
        x = module(x, training=False)
    raise IndexError(layer)


def keep_tensorflow_out() -> None:
    """Tell Keras that TensorFlow is absent, so a JAX or torch engine never imports it.

    ``keras.utils.set_random_seed`` seeds TensorFlow whenever it is installed, importing it (a
    second framework, seconds of start-up and its thread pools) into a worker that never uses
    it. Keras' lazy ``tensorflow`` module is private: if it moves, TensorFlow is imported again,
    which costs time but changes no number.
    """
    try:
        from keras.src.utils import module_utils
    except ImportError:  # pragma: no cover - a Keras without the private module
        return
    if getattr(module_utils.tensorflow, "module", None) is None:
        module_utils.tensorflow._available = False
