"""The optional probes of the contract on Keras (every engine): loss and gradients at given
canonical parameters (with injected noise after each BN layer), and the batch statistics of
every BN layer.

A functional forward over the canonical arrays in ``keras.ops`` (``ops.moments`` and
``ops.batch_normalization``, what ``keras.layers.BatchNormalization`` computes in training mode),
differentiated by the engine's autodiff (``engine.grads``: ``tf.GradientTape``,
``jax.value_and_grad`` or ``torch.autograd``). Same module name and functions in every adapter.
"""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from harness.backends.keras.loop import cross_entropy  # noqa: E402
from harness.specs import ModelSpec  # noqa: E402

Params = dict[str, np.ndarray]
TRAINABLE = ("kernel", "bias", "scale", "offset")


def check_spec(spec: ModelSpec) -> None:
    """The probes cover MLPs without normalization or with BatchNorm, without dropout."""
    if spec.norm not in ("none", "batchnorm") or spec.dropout > 0 or spec.ghost_batch > 0:
        raise NotImplementedError(
            "probes support norm none/batchnorm without dropout or ghost batches only"
        )


def forward(
    spec: ModelSpec, t: dict[str, Any], x: Any, noise: dict[str, Any], stats: dict[str, Any]
) -> Any:
    """Logits in training mode; fills ``stats`` with each BN input's batch mean and biased var."""
    act = keras.activations.get(spec.activation)
    h = x
    for i in range(len(spec.hidden_sizes)):
        h = ops.matmul(h, t[f"dense_{i}/kernel"]) + t[f"dense_{i}/bias"]
        if spec.placement == "after":
            h = act(h)
        if spec.has_norm:
            mean, var = ops.moments(h, axes=[0])
            stats[f"norm_{i}/mean"], stats[f"norm_{i}/var"] = mean, var
            h = ops.batch_normalization(
                h, mean, var, axis=-1, offset=t[f"norm_{i}/offset"],
                scale=t[f"norm_{i}/scale"], epsilon=spec.bn_epsilon,
            )  # fmt: skip
            if noise:
                h = h * noise[f"norm_{i}/noise_scale"] + noise[f"norm_{i}/noise_shift"]
        if spec.placement == "before":
            h = act(h)
    last = len(spec.hidden_sizes)
    return ops.matmul(h, t[f"dense_{last}/kernel"]) + t[f"dense_{last}/bias"]


def _tensors(arrays: Params) -> dict[str, Any]:
    return {k: ops.convert_to_tensor(np.asarray(v, np.float32)) for k, v in arrays.items()}


def _np(value: Any) -> np.ndarray:
    return np.array(ops.convert_to_numpy(value), np.float32)


def loss_and_grads(
    spec: ModelSpec,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    noise: Params | None,
    engine: ModuleType,
) -> tuple[float, float, Params]:
    """Mean cross-entropy, accuracy and the gradients of every trainable canonical array."""
    check_spec(spec)
    t = _tensors(params)
    names = [n for n in t if n.rsplit("/", 1)[-1] in TRAINABLE]
    noise_t = _tensors(noise or {})
    xt, yt = ops.convert_to_tensor(x), ops.convert_to_tensor(np.asarray(y, np.int32))

    def target(*leaves: Any) -> tuple[Any, list[Any]]:
        logits = forward(spec, {**t, **dict(zip(names, leaves))}, xt, noise_t, {})
        loss = cross_entropy(yt, logits)
        return loss, [loss, logits]

    (loss, logits), grads = engine.grads(target, [t[n] for n in names])
    acc = float(np.mean(np.argmax(_np(logits), axis=-1) == np.asarray(y)))
    return float(_np(loss)), acc, {n: _np(g) for n, g in zip(names, grads)}


def batch_statistics(spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
    """Each BN layer's input mean and biased variance over the batch ``x`` (training mode)."""
    check_spec(spec)
    stats: dict[str, Any] = {}
    forward(spec, _tensors(params), ops.convert_to_tensor(x), {}, stats)
    return {k: _np(v) for k, v in stats.items()}
