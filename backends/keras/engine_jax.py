"""Keras on JAX: one ``jax.jit``-compiled ``lax.scan`` per epoch over ``Model.stateless_call``.

Same names as :mod:`harness.backends.keras.engine_tensorflow`. The epoch carries the model's
trainable and non-trainable values (BN statistics, dropout seed) and the optimizer's variables
through ``lax.scan``; the step is Keras' own layers (``stateless_call``) and optimizer
(``stateless_apply``), so only the loop around them is JAX's. The learning rate is one of the
optimizer's variables, so a new lr never recompiles.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from harness.backends.jax.environment import limit_threads
from harness.backends.keras.loop import EpochFn, count_correct, cross_entropy
from harness.backends.keras.model import keep_tensorflow_out

ERRORS: tuple[type[Exception], ...] = ()
TRAIN_LOOP = "one jax.jit'ed lax.scan per epoch over Model.stateless_call"


def configure(threads: int, device: str) -> str:
    """Keras kept off TensorFlow; XLA's CPU threads (before XLA starts); full float32 on GPU."""
    keep_tensorflow_out()
    note = limit_threads(threads)
    if device == "gpu":
        jax.config.update("jax_default_matmul_precision", "highest")
    return note


def devices() -> list[str]:
    """CPU, plus GPU when a JAX GPU backend is usable."""
    try:
        return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
    except RuntimeError:
        return ["cpu"]


def versions(device: str) -> dict[str, str]:
    """jax versions, threads, matmul precision, XLA flags."""
    threads = os.environ.get("XLA_FLAGS", "")
    single = "xla_cpu_multi_thread_eigen=false" in threads
    info = {
        "jax": jax.__version__,
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
        "xla_flags": threads,
        "intra_op_threads": "1" if single else str(os.cpu_count()),
        "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "true"),
    }
    if device == "gpu":
        info["gpu"] = jax.devices("gpu")[0].device_kind
    return info


def synchronize(device: str) -> None:
    """Nothing to do: every result the adapter reads is waited for (``block_until_ready``)."""


def _step(model: keras.Model, opt: keras.optimizers.Optimizer, wd: float) -> Callable[..., Any]:
    def loss_fn(tv: list, ntv: list, xb: jax.Array, yb: jax.Array) -> Any:
        logits, ntv = model.stateless_call(tv, ntv, xb, training=True)
        return cross_entropy(yb, logits), (logits, ntv)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state: tuple, x: jax.Array, y: jax.Array, idx: jax.Array) -> Any:
        tv, ntv, ov = state
        xb, yb = x[idx], y[idx]
        (loss, (logits, ntv)), g = grad_fn(tv, ntv, xb, yb)
        if wd:  # coupled L2, as torch.optim: the decay goes through momentum / Adam moments
            g = [gi + wd * v for gi, v in zip(g, tv, strict=True)]
        tv, ov = opt.stateless_apply(ov, g, tv)
        return (tv, ntv, ov), (loss, count_correct(yb, logits))

    return step


def make_epoch_fn(model: keras.Model, opt: keras.optimizers.Optimizer, wd: float) -> EpochFn:
    """``epoch(x, y, order) -> (step_losses, correct)``: one jitted scan, state written back."""
    step = _step(model, opt, wd)
    groups = (model.trainable_variables, model.non_trainable_variables, opt.variables)

    @jax.jit
    def epoch(state: tuple, x: jax.Array, y: jax.Array, order: jax.Array) -> Any:
        state, (losses, correct) = jax.lax.scan(lambda s, i: step(s, x, y, i), state, order)
        return state, losses, jnp.sum(correct)

    def run(x: Any, y: Any, order: Any) -> tuple[np.ndarray, int]:
        state = tuple([v.value for v in group] for group in groups)
        state, losses, correct = epoch(state, x, y, order)
        for group, values in zip(groups, state, strict=True):
            for var, value in zip(group, values, strict=True):
                var.assign(value)
        return np.asarray(jax.block_until_ready(losses)), int(correct)

    return run


def compile_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` under ``jax.jit``, as the training loop runs."""
    return jax.jit(fn)


def wait(value: Any) -> None:
    """Block until ``value`` is computed."""
    jax.block_until_ready(value)


def grads(fn: Callable[..., Any], args: Sequence[Any]) -> tuple[Any, list[Any]]:
    """``fn(*args) -> (scalar, aux)``: ``aux`` and the gradients of the scalar wrt ``args``."""
    argnums = tuple(range(len(args)))
    (_, aux), g = jax.value_and_grad(fn, argnums=argnums, has_aux=True)(*args)
    return aux, list(g)


def inference() -> contextlib.AbstractContextManager[Any]:
    """The context for forward passes that need no gradient."""
    return contextlib.nullcontext()
