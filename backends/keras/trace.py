"""One traced training step of the Keras MLP on any engine: each layer applied through
``stateless_call`` with a zero perturbation added to its output, so the engine's autodiff
(``ENGINE.grads``, as :meth:`KerasBackend.batchnorm` uses) gives the gradient of the loss w.r.t.
every layer output along with the parameter gradients."""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from harness.backends.keras.loop import cross_entropy  # noqa: E402
from harness.backends.keras.model import build_mlp, set_params  # noqa: E402
from harness.numerics.difftest import layer_spec  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402

Arrays = dict[str, np.ndarray]
NATIVE = (0.01, 1e-3)
"""``BatchNormalization``'s own momentum 0.99 (core convention 0.01) and epsilon."""
LEAVES = {
    "kernel": "grad_kernel",
    "bias": "grad_bias",
    "gamma": "grad_scale",
    "beta": "grad_offset",
}


def _np(value: Any) -> np.ndarray:
    return np.array(ops.convert_to_numpy(value), np.float64)


def _width(layer: layers.Layer, spec: ModelSpec) -> int:
    index = int(layer.name.split("_")[1])
    return (
        spec.layer_sizes()[index][1] if layer.name.startswith("dense") else spec.hidden_sizes[index]
    )


def trace_step(
    engine: ModuleType,
    spec: ModelSpec,
    params: Arrays,
    x: np.ndarray,
    y: np.ndarray,
    native: bool = False,
    mutate: str = "",
) -> Arrays:
    """See :meth:`harness.backend.Backend.trace_step` (``running_var`` is not offered here)."""
    if mutate == "running_var":
        raise ValueError("keras has no switch for the variance fed to the running average")
    spec = layer_spec(spec, NATIVE if native else None, mutate)
    model = build_mlp(spec)
    set_params(model, params)
    body = list(model.layers)
    xt = ops.convert_to_tensor(np.asarray(x, np.float32))
    yt = ops.convert_to_tensor(np.asarray(y, np.int32))
    zeros = [ops.zeros((len(x), _width(layer, spec))) for layer in body]
    weights = [v.value for layer in body for v in layer.trainable_variables]
    stats = [[v.value for v in layer.non_trainable_variables] for layer in body]

    def loss_fn(*args: Any) -> tuple[Any, list[Any]]:
        h, rest, outs, new_stats = xt, iter(args[len(body) :]), [], []
        for layer, shift, own in zip(body, args[: len(body)], stats, strict=True):
            tv = [next(rest) for _ in layer.trainable_variables]
            mode = {"training": True} if layer.name.startswith("norm") else {}
            h, moved = layer.stateless_call(tv, own, h, **mode)
            h = h + shift
            outs.append(h)
            new_stats += list(moved)
        loss = cross_entropy(yt, h)
        return loss, [loss, *outs, *new_stats]

    aux, grads = engine.grads(loss_fn, [*zeros, *weights])
    return _collect(body, aux, grads)


def _collect(body: list[layers.Layer], aux: list[Any], grads: list[Any]) -> Arrays:
    """Canonical names for the outputs, gradients and statistics of :func:`trace_step`."""
    n = len(body)
    result: Arrays = {"loss": _np(aux[0])}
    for layer, out, grad in zip(body, aux[1 : n + 1], grads[:n], strict=True):
        result[f"{layer.name}/out"], result[f"{layer.name}/grad"] = _np(out), _np(grad)
    param_grads, stats = iter(grads[n:]), iter(aux[n + 1 :])
    for layer in body:
        for var in layer.trainable_variables:
            result[f"{layer.name}/{LEAVES[var.name]}"] = _np(next(param_grads))
        for var in layer.non_trainable_variables:
            key = "mean" if var.name == "moving_mean" else "var"
            result[f"{layer.name}/{key}"] = _np(next(stats))
    return result
