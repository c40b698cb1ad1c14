"""JAX (Flax linen + optax), the careful expert's way: a whole epoch in one ``jax.jit``.

The data live on the device; the epoch function draws the permutation, cuts it into equal
batches (the last partial batch dropped, as the harness's batch order) and runs the steps with
``jax.lax.scan``, so the host dispatches once per epoch. The training state is donated. The
epoch time ends at ``block_until_ready`` (JAX dispatch is asynchronous).
Same MLP as the harness: 784-512-256-10, ReLU, optional BatchNorm before each ReLU (Flax
momentum 0.9 = the harness's 0.1, epsilon 1e-5, the two-pass variance the harness uses:
``use_fast_variance=False``), SGD lr 0.01 momentum 0.9.

    python baselines/jax_expert.py --batch-size 128 --epochs 3 --bn
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

HIDDEN = (512, 256)


class MLP(nn.Module):
    """Dense -> [BatchNorm] -> ReLU per hidden layer, then a Dense head (logits)."""

    classes: int
    bn: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """Logits; ``train`` normalizes with batch statistics and updates the running ones."""
        for width in HIDDEN:
            x = nn.Dense(width)(x)
            if self.bn:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    use_fast_variance=False,
                )(x)
            x = nn.relu(x)
        return nn.Dense(self.classes)(x)


def make_epoch(model: MLP, tx: optax.GradientTransformation, batch_size: int) -> Any:
    """Jitted ``epoch(state, x, y) -> (state, mean loss)``; ``state`` is donated."""

    def loss_fn(params: Any, stats: Any, xb: jax.Array, yb: jax.Array) -> Any:
        logits, updates = model.apply(
            {"params": params, "batch_stats": stats}, xb, train=True, mutable=["batch_stats"]
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss, updates.get("batch_stats", stats)

    def step(state: Any, batch: tuple[jax.Array, jax.Array]) -> Any:
        params, stats, opt_state, key = state
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, *batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats, opt_state, key), loss

    @functools.partial(jax.jit, donate_argnums=0)
    def epoch(state: Any, x: jax.Array, y: jax.Array) -> Any:
        key, sub = jax.random.split(state[3])
        steps = x.shape[0] // batch_size
        perm = jax.random.permutation(sub, x.shape[0])[: steps * batch_size]
        idx = perm.reshape(steps, batch_size)
        state, losses = jax.lax.scan(step, (*state[:3], key), (x[idx], y[idx]))
        return state, losses.mean()

    return epoch


def prepare(
    x: np.ndarray, y: np.ndarray, batch_size: int, bn: bool, seed: int = 0, device: str = "cpu"
) -> Callable[[], float]:
    """Initialize once; the returned function trains one epoch and returns its seconds."""
    model = MLP(classes=int(y.max()) + 1, bn=bn)
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    variables = model.init(init_key, jnp.zeros((1, x.shape[1])), train=False)
    tx = optax.sgd(0.01, momentum=0.9)
    params = variables["params"]
    dev = jax.devices(device)[0]
    state = [jax.device_put((params, variables.get("batch_stats", {}), tx.init(params), key), dev)]
    xs, ys = jax.device_put(x.astype(np.float32), dev), jax.device_put(y.astype(np.int32), dev)
    epoch_fn = make_epoch(model, tx, batch_size)

    def epoch() -> float:
        start = time.perf_counter()
        state[0], loss = epoch_fn(state[0], xs, ys)
        loss.block_until_ready()
        return time.perf_counter() - start

    return epoch


def run(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    epochs: int,
    bn: bool,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Seconds of each of ``epochs`` epochs (the first includes compilation)."""
    epoch = prepare(x, y, batch_size, bn, seed, device)
    return [epoch() for _ in range(epochs)]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _cli import main

    main("jax_expert", run)
