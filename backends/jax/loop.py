"""The jitted functions: optax optimizer, training step, scanned epoch, forward and metrics.

An epoch is one ``jax.jit`` call: ``jax.lax.scan`` runs the steps over the epoch's index array and
gathers each batch from the preloaded data inside the scan, so the host dispatches once per epoch
(faster than a jitted step per batch: the timing suite measures it, see
docs/numerics-conventions.md). The learning rate is an ``optax.inject_hyperparams`` value inside
the optimizer state, so a new lr never recompiles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from harness.backends.jax.conventions import adam
from harness.backends.jax.model import MLP, Tree
from harness.specs import ModelSpec, TrainSpec, replace

State = tuple[Tree, Tree, Any, jax.Array]
"""The training carry: ``(params, batch_stats, opt_state, dropout_key)``."""


def _optimizer(spec: TrainSpec, learning_rate: Any) -> optax.GradientTransformation:
    if spec.optimizer == "adam":
        inner = adam(spec, learning_rate)
    else:
        # optax's trace is torch's buffer: v = m * v + g, p -= lr * v (nesterov: g + m * v).
        inner = optax.sgd(learning_rate, momentum=spec.momentum or None, nesterov=spec.nesterov)
    if spec.weight_decay <= 0:
        return inner
    # torch.optim's weight_decay is coupled L2: wd * p added to every gradient before the update.
    return optax.chain(optax.add_decayed_weights(spec.weight_decay), inner)


def make_optimizer(spec: TrainSpec) -> optax.GradientTransformation:
    """SGD (momentum, nesterov) or Adam with torch.optim semantics and an injectable lr."""
    return optax.inject_hyperparams(functools.partial(_optimizer, spec))(learning_rate=spec.lr)


def set_learning_rate(opt_state: Any, lr: float, device: Any) -> None:
    """Change the injected learning rate in place (same dtype and shape: no recompilation)."""
    old = opt_state.hyperparams["learning_rate"]
    opt_state.hyperparams["learning_rate"] = jax.device_put(jnp.asarray(lr, old.dtype), device)


def make_step(module: MLP, tx: optax.GradientTransformation) -> Callable[..., Any]:
    """``step(state, x, y, idx) -> (state, (loss, correct))`` on the batch ``x[idx], y[idx]``."""

    def loss_fn(params: Tree, stats: Tree, xb: jax.Array, yb: jax.Array, key: jax.Array) -> Any:
        logits, updates = module.apply(
            {"params": params, "batch_stats": stats},
            xb,
            use_running_average=False,
            deterministic=False,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss, (logits, updates.get("batch_stats", stats))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state: State, x: jax.Array, y: jax.Array, idx: jax.Array) -> Any:
        params, stats, opt_state, key = state
        key, sub = jax.random.split(key)
        xb, yb = x[idx], y[idx]
        (loss, (logits, stats)), grads = grad_fn(params, stats, xb, yb, sub)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        correct = jnp.sum(jnp.argmax(logits, axis=-1) == yb)
        return (params, stats, opt_state, key), (loss, correct)

    return step


def make_epoch(module: MLP, tx: optax.GradientTransformation) -> Callable[..., Any]:
    """Jitted ``epoch(state, x, y, order) -> (state, losses, correct)``; ``state`` is donated."""
    step = make_step(module, tx)

    def epoch(state: State, x: jax.Array, y: jax.Array, order: jax.Array) -> Any:
        state, (losses, correct) = jax.lax.scan(lambda s, idx: step(s, x, y, idx), state, order)
        return state, losses, jnp.sum(correct)

    return jax.jit(epoch, donate_argnums=0)


def step_key(spec: TrainSpec) -> TrainSpec:
    """``spec`` with what the compiled step does not depend on reset (the lr is injected)."""
    return replace(spec, lr=0.0, lr_step=0, lr_decay=1.0, epochs=0, batch_size=0, seed=0)


@functools.lru_cache(maxsize=16)
def cached_epoch(
    model: ModelSpec, key: TrainSpec
) -> tuple[Callable[..., Any], optax.GradientTransformation]:
    """The jitted epoch and its optimizer for an architecture and optimizer (``step_key``).

    One per worker and configuration: a new ``jax.jit`` per :meth:`JaxBackend.train` call
    compiled again every time (1.6 s without BN, 2.4 s with, for the 784-512-256-10 MLP at
    batch 128 on the 2-core CPU: first epoch minus steady epoch), so every cell and every
    repeated timing paid it again.
    The optimizer state's lr starts at 0; callers set it with :func:`set_learning_rate`.
    """
    tx = make_optimizer(key)
    return make_epoch(MLP(model), tx), tx


def make_stepper(
    epoch_fn: Callable[..., Any],
    state: State,
    data: tuple[jax.Array, jax.Array],
    put: Callable[[Any], jax.Array],
    model: Any,
) -> Callable[[Any], None]:
    """``run(order)``: ``epoch_fn`` over ``order`` from the carried state, waited for; the
    model's variables follow the state."""
    carry = [state]

    def run(order: Any) -> None:
        new, losses, _ = epoch_fn(carry[0], *data, put(order))
        carry[0] = new
        jax.block_until_ready(losses)
        model.params, model.batch_stats, model.opt_state = new[:3]

    return run


@functools.lru_cache(maxsize=16)
def forward_fns(spec: ModelSpec) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Jitted ``logits(variables, x, training)`` and ``metrics(variables, x, y, training)``.

    ``training=True`` normalizes with batch statistics; the updated statistics are discarded and
    dropout stays off, so the model is unchanged.
    """
    module = MLP(spec)

    def logits(variables: Tree, x: jax.Array, training: bool) -> jax.Array:
        if not training:
            return module.apply(variables, x, use_running_average=True, deterministic=True)
        out, _ = module.apply(
            variables, x, use_running_average=False, deterministic=True, mutable=["batch_stats"]
        )
        return out

    def metrics(variables: Tree, x: jax.Array, y: jax.Array, training: bool) -> Any:
        out = logits(variables, x, training)
        loss = optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
        return loss, jnp.mean(jnp.argmax(out, axis=-1) == y)

    return (
        jax.jit(logits, static_argnames="training"),
        jax.jit(metrics, static_argnames="training"),
    )
