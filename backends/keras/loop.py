"""The compiled Keras training loop: optimizer, loss and one ``tf.function`` per epoch.

Each epoch is a single call of a ``tf.function`` whose body loops over the epoch's index array
on the device: it gathers each batch, takes a gradient step with a real Keras optimizer and
writes the loss into a tensor. The host reads the losses once per epoch, after the device has
finished, so no Python runs per step. Runs of the same architecture and optimizer share one
compiled loop (:class:`CompiledLoop`).

Optimizers follow ``torch.optim`` where Keras can be told to: weight decay is *coupled* L2
(``wd * param`` added to every trainable parameter's gradient, as torch does; Keras' own
``weight_decay`` is decoupled, AdamW-style, and is not used), Adam's constants come from the
TrainSpec and Adam's epsilon is moved to torch's place (:class:`TorchEpsilonAdam`). The one
difference left (SGD momentum after an lr change) is documented on :func:`make_optimizer`.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from harness.specs import TrainSpec  # noqa: E402

EpochFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
# XLA for the whole epoch loop, on CPU and GPU alike. Measured on the 2-core CPU (784-512-256-10,
# batch 128, 4000 samples, s/epoch no BN / BN): this loop with XLA 0.076 / 0.085, the same loop
# without XLA 0.124 / 0.147, XLA per step inside it 0.090 / 0.095, Keras' fastest ``fit``
# (steps_per_execution=10000, jit_compile=True) 0.148 / 0.186. Keras' "auto" means no XLA on CPU.
JIT_COMPILE = True


class TorchEpsilonAdam(keras.optimizers.Adam):
    """Keras' Adam with ``epsilon`` where torch and optax put it: the core's 1e-8 means one thing.

    Keras adds ``epsilon`` to ``sqrt(v_t)`` and bias-corrects the step size (the paper's
    "epsilon hat"); torch adds it to the bias-corrected ``sqrt(v_t / (1 - b2^t))``. Handing
    Keras ``epsilon * sqrt(1 - b2^t)`` at step ``t`` makes the two updates identical; Keras'
    own update code does the rest. Measured against torch (784-512-256-10, 10 steps): step
    losses 2e-4..5e-4 relative apart with Keras' placement, 2e-6 with this one.
    """

    def update_step(
        self, gradient: tf.Tensor, variable: tf.Variable, learning_rate: tf.Tensor
    ) -> None:
        """One Adam update with the epsilon rescaled for step ``iterations + 1``."""
        epsilon = self.epsilon
        step = tf.cast(self.iterations + 1, variable.dtype)
        beta_2 = tf.cast(self.beta_2, variable.dtype)
        self.epsilon = epsilon * tf.sqrt(1.0 - tf.pow(beta_2, step))
        try:
            super().update_step(gradient, variable, learning_rate)
        finally:
            self.epsilon = epsilon


def make_optimizer(spec: TrainSpec) -> keras.optimizers.Optimizer:
    """A Keras SGD or Adam with the TrainSpec's constants (weight decay is added by the step).

    SGD momentum differs from ``torch.optim`` and optax when the lr changes: Keras keeps
    ``v = m*v - lr*g`` and steps ``+v`` (the lr inside the velocity), torch keeps
    ``b = m*b + g`` and steps ``-lr*b``. The two are identical at constant lr; after a step
    decay, Keras' velocity still carries the old lr and fades out at the rate ``m`` (measured:
    step losses ~3e-2 relative apart 30 steps after a x0.1 decay at lr 0.05, m 0.9).
    Adam's epsilon is translated to torch's placement by :class:`TorchEpsilonAdam`.
    """
    if spec.optimizer == "adam":
        return TorchEpsilonAdam(
            learning_rate=float(spec.lr),
            beta_1=float(spec.adam_beta1),
            beta_2=float(spec.adam_beta2),
            epsilon=float(spec.adam_epsilon),
        )
    return keras.optimizers.SGD(
        learning_rate=float(spec.lr), momentum=float(spec.momentum), nesterov=spec.nesterov
    )


def cross_entropy(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean sparse softmax cross-entropy of integer labels ``y``."""
    losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return tf.reduce_mean(losses)


def count_correct(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Number of rows whose arg-max equals the label (int32)."""
    hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
    return tf.reduce_sum(tf.cast(hits, tf.int32))


def make_epoch_fn(model: keras.Model, opt: keras.optimizers.Optimizer, wd: float) -> EpochFn:
    """A compiled ``epoch(x, y, order) -> (step_losses, correct)`` training over ``order``."""
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

    return epoch  # type: ignore[return-value]


def _copy(source: Sequence[keras.Variable], target: Sequence[keras.Variable]) -> None:
    for src, dst in zip(source, target, strict=True):
        dst.assign(src.value)


@dataclass
class CompiledLoop:
    """A stand-in model with its optimizer and compiled epoch, shared by runs of one config.

    A new ``tf.function`` per run recompiled for seconds every cell and grew the worker by
    ~19 MB of RSS per run (784-512-256-10 MLP, XLA; measured, not given back after ``gc``).
    Instead a run copies its weights (random-seed state included) into the stand-in, resets
    the optimizer to its freshly built state, and gets its weights back after every epoch.
    """

    model: keras.Model
    opt: keras.optimizers.Optimizer
    run: EpochFn

    def start(self, model: keras.Model) -> None:
        """Load ``model``'s variables and give the optimizer a fresh state (zeros, step 0)."""
        _copy(model.variables, self.model.variables)
        for var in self.opt.variables:
            var.assign(tf.zeros(var.shape, var.dtype))

    def finish(self, model: keras.Model) -> None:
        """Copy the trained variables back into ``model``."""
        _copy(self.model.variables, model.variables)

    def stepper(self, x: np.ndarray, y: np.ndarray, device: str) -> Callable[[np.ndarray], None]:
        """``run(order)``: train the stand-in on ``order`` (steps, batch), waiting for the end."""
        with tf.device(device):
            xt = tf.constant(np.asarray(x, np.float32))
            yt = tf.constant(np.asarray(y, np.int32))

        def run(order: np.ndarray) -> None:
            with tf.device(device):
                losses, _ = self.run(xt, yt, tf.constant(np.asarray(order, np.int32)))
                losses.numpy()  # waits for the device

        return run


def loop_key(model: keras.Model, spec: TrainSpec) -> str:
    """What a compiled loop depends on: the architecture and the optimizer constants (not lr)."""
    optimizer = [spec.optimizer, spec.momentum, spec.nesterov, spec.weight_decay]
    optimizer += [spec.adam_beta1, spec.adam_beta2, spec.adam_epsilon]
    return json.dumps([model.get_config(), optimizer], sort_keys=True, default=str)


def compiled_loop(
    cache: dict[str, CompiledLoop], model: keras.Model, spec: TrainSpec
) -> CompiledLoop:
    """The cached loop for ``model``'s architecture and ``spec``'s optimizer, built on a miss."""
    key = loop_key(model, spec)
    if key not in cache:
        twin = keras.models.clone_model(model)
        opt = make_optimizer(spec)
        opt.build(twin.trainable_variables)
        cache[key] = CompiledLoop(twin, opt, make_epoch_fn(twin, opt, float(spec.weight_decay)))
    return cache[key]
