"""The engine-neutral part of the Keras training loop: optimizer, loss, the shared compiled loop.

The compiled epoch itself is the engine's (``make_epoch_fn`` of
:mod:`harness.backends.keras.engine_tensorflow`, ``engine_jax``, ``engine_torch``); runs of the
same architecture and optimizer share one compiled loop (:class:`CompiledLoop`).

Optimizers follow ``torch.optim`` where Keras can be told to: weight decay is *coupled* L2
(``wd * param`` added to every trainable parameter's gradient, as torch does; Keras' own
``weight_decay`` is decoupled, AdamW-style, and is not used), Adam's constants come from the
TrainSpec and Adam's epsilon is moved to torch's place (:class:`TorchEpsilonAdam`). The one
difference left (SGD momentum after an lr change) is documented on :func:`make_optimizer`.
"""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

import json  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from harness.specs import TrainSpec  # noqa: E402

EpochFn = Callable[[Any, Any, Any], tuple[np.ndarray, int]]
"""``epoch(x, y, order) -> (step_losses, correct)`` on device tensors, waited for."""


class TorchEpsilonAdam(keras.optimizers.Adam):
    """Keras' Adam with ``epsilon`` where torch and optax put it: the core's 1e-8 means one thing.

    Keras adds ``epsilon`` to ``sqrt(v_t)`` and bias-corrects the step size (the paper's
    "epsilon hat"); torch adds it to the bias-corrected ``sqrt(v_t / (1 - b2^t))``. Handing
    Keras ``epsilon * sqrt(1 - b2^t)`` at step ``t`` makes the two updates identical; Keras'
    own update code does the rest. Measured against torch (784-512-256-10, 10 steps): step
    losses 2e-4..5e-4 relative apart with Keras' placement, 2e-6 with this one. Being a
    subclass, it also keeps Keras' torch engine from swapping in its own fused Adam.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """One Adam update with the epsilon rescaled for step ``iterations + 1``."""
        epsilon = self.epsilon
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_2 = ops.cast(self.beta_2, variable.dtype)
        self.epsilon = epsilon * ops.sqrt(1.0 - ops.power(beta_2, step))
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
    if spec.optimizer == "adam" and "adam_epsilon" in spec.native:  # Keras's own epsilon
        betas = {"beta_1": float(spec.adam_beta1), "beta_2": float(spec.adam_beta2)}
        return keras.optimizers.Adam(learning_rate=float(spec.lr), **betas)
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


def cross_entropy(y: Any, logits: Any) -> Any:
    """Mean sparse softmax cross-entropy of integer labels ``y``."""
    losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return ops.mean(losses)


def count_correct(y: Any, logits: Any) -> Any:
    """Number of rows whose arg-max equals the label (int32)."""
    hits = ops.equal(ops.cast(ops.argmax(logits, axis=1), "int32"), ops.cast(y, "int32"))
    return ops.sum(ops.cast(hits, "int32"))


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
            var.assign(ops.zeros(var.shape, var.dtype))

    def finish(self, model: keras.Model) -> None:
        """Copy the trained variables back into ``model``."""
        _copy(self.model.variables, model.variables)

    def stepper(self, x: Any, y: Any, place: str) -> Callable[[np.ndarray], None]:
        """``run(order)``: train the stand-in on ``order`` (steps, batch), waiting for the end.

        ``x``/``y`` are tensors on ``place`` (a ``keras.device`` name), placed once by the caller.
        """

        def run(order: np.ndarray) -> None:
            with keras.device(place):
                self.run(x, y, ops.convert_to_tensor(np.asarray(order, np.int32)))

        return run


def loop_key(model: keras.Model, spec: TrainSpec) -> str:
    """What a compiled loop depends on: the architecture and the optimizer constants (not lr)."""
    optimizer = [spec.optimizer, spec.momentum, spec.nesterov, spec.weight_decay]
    optimizer += [spec.adam_beta1, spec.adam_beta2, spec.adam_epsilon, list(spec.native)]
    return json.dumps([model.get_config(), optimizer], sort_keys=True, default=str)


MakeEpoch = Callable[[keras.Model, keras.optimizers.Optimizer, float], EpochFn]


def compiled_loop(
    cache: dict[str, CompiledLoop],
    model: keras.Model,
    spec: TrainSpec,
    make_epoch: MakeEpoch,
    build: Callable[[], keras.Model],
) -> CompiledLoop:
    """The cached loop for ``model``'s architecture and ``spec``'s optimizer, built on a miss.

    ``build`` makes the stand-in (a new model of the same architecture): not
    ``keras.models.clone_model``, which imports TensorFlow whatever the engine.
    """
    key = loop_key(model, spec)
    if key not in cache:
        twin = build()
        opt = make_optimizer(spec)
        opt.build(twin.trainable_variables)
        cache[key] = CompiledLoop(twin, opt, make_epoch(twin, opt, float(spec.weight_decay)))
    return cache[key]
