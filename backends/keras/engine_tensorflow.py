"""Keras on TensorFlow: threads, devices, one XLA-compiled ``tf.function`` per epoch, gradients.

Every ``engine_*`` module of this adapter has the same names (``configure``, ``devices``,
``versions``, ``synchronize``, ``make_epoch_fn``, ``compile_fn``, ``wait``, ``grads``,
``ERRORS``), so :mod:`harness.backends.keras.backend` stays engine-neutral.

Each epoch is a single call of a ``tf.function`` whose body loops over the epoch's index array
on the device: it gathers each batch, takes a gradient step with a real Keras optimizer and
writes the loss into a tensor. The host reads the losses once per epoch, after the device has
finished, so no Python runs per step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness.backends.keras.loop import EpochFn, count_correct, cross_entropy

# XLA for the whole epoch loop, on CPU and GPU alike. Measured on the 2-core CPU (784-512-256-10,
# batch 128, 4000 samples, s/epoch no BN / BN): this loop with XLA 0.076 / 0.085, the same loop
# without XLA 0.124 / 0.147, XLA per step inside it 0.090 / 0.095, Keras' fastest ``fit``
# (steps_per_execution=10000, jit_compile=True) 0.148 / 0.186. Keras' "auto" means no XLA on CPU.
JIT_COMPILE = True
INTER_OP_THREADS = 1  # an MLP step is a chain of dependent ops; a second pool only oversubscribes
ERRORS: tuple[type[Exception], ...] = (tf.errors.OpError,)
TRAIN_LOOP = "one tf.function per epoch (while loop over the batch order, XLA)"

tf.get_logger().setLevel("ERROR")


def configure(threads: int, device: str) -> str:
    """Threads, TF32 off and GPU memory growth; these only work before TF's runtime starts."""
    try:
        if threads > 0:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as exc:  # runtime already initialized (several backends, one process)
        return f"not applied: {exc}"
    finally:
        # Full float32 everywhere so backends are comparable; stated in versions().
        tf.config.experimental.enable_tensor_float_32_execution(False)
    return "applied"


def devices() -> list[str]:
    """CPU, plus GPU when TensorFlow sees one."""
    return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]


def versions(device: str) -> dict[str, str]:
    """tensorflow version, XLA, threads, TF32, oneDNN and the GPU."""
    threading = tf.config.threading
    info = {
        "tensorflow": tf.__version__,
        "jit_compile": str(JIT_COMPILE),
        "intra_op_threads": str(threading.get_intra_op_parallelism_threads()),
        "inter_op_threads": str(threading.get_inter_op_parallelism_threads()),
        "tf32": str(tf.config.experimental.tensor_float_32_execution_enabled()),
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        info["gpu"] = str(details.get("device_name", gpus[0].name))
        info["memory_growth"] = str(tf.config.experimental.get_memory_growth(gpus[0]))
    return info


def synchronize(device: str) -> None:
    """Wait for queued device work (GPU execution is asynchronous); a no-op on CPU."""
    if device == "gpu":
        tf.test.experimental.sync_devices()


def make_epoch_fn(model: keras.Model, opt: keras.optimizers.Optimizer, wd: float) -> EpochFn:
    """``epoch(x, y, order) -> (step_losses, correct)`` training over ``order``, XLA-compiled."""
    variables = model.trainable_variables

    def step(xb: tf.Tensor, yb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = cross_entropy(yb, logits)
        grads = tape.gradient(loss, variables)
        if wd:  # coupled L2, as torch.optim: the decay goes through momentum / Adam moments
            grads = [g + wd * v for g, v in zip(grads, variables, strict=True)]
        opt.apply(grads, variables)
        return loss, count_correct(yb, logits)

    @tf.function(jit_compile=JIT_COMPILE)
    def epoch(x: tf.Tensor, y: tf.Tensor, order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        steps = order.shape[0]
        losses = tf.TensorArray(tf.float32, size=steps)
        correct = tf.zeros((), tf.int32)
        for i in tf.range(steps):
            loss, hits = step(tf.gather(x, order[i]), tf.gather(y, order[i]))
            losses = losses.write(i, loss)
            correct += hits
        return losses.stack(), correct

    def run(x: Any, y: Any, order: Any) -> tuple[np.ndarray, int]:
        losses, correct = epoch(x, y, order)
        return losses.numpy(), int(correct)  # .numpy() waits for the device

    return run


def compile_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled as the training loop is (XLA), without AutoGraph rewriting it."""
    return tf.function(tf.autograph.experimental.do_not_convert(fn), jit_compile=JIT_COMPILE)


def wait(value: Any) -> None:
    """Block until ``value`` is computed."""
    value.numpy()


def grads(fn: Callable[..., Any], args: Sequence[Any]) -> tuple[Any, list[Any]]:
    """``fn(*args) -> (scalar, aux)``: ``aux`` and the gradients of the scalar wrt ``args``."""
    with tf.GradientTape() as tape:
        for arg in args:
            tape.watch(arg)
        target, aux = fn(*args)
    return aux, tape.gradient(target, list(args))


def inference() -> contextlib.AbstractContextManager[Any]:
    """The context for forward passes that need no gradient."""
    return contextlib.nullcontext()
