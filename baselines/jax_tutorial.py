"""JAX (Flax linen + optax), the tutorial way: a jitted train step called from a Python loop.

As the Flax MNIST example: a ``TrainState``, NumPy batches cut from a NumPy permutation on the
host and handed to the jitted ``train_step`` one by one (a host-to-device copy per step), the
step losses kept as device arrays and read once at the end of the epoch. The last partial batch
is kept (it compiles the step a second time, once). Same MLP and optimizer as :mod:`jax_expert`.

    python baselines/jax_tutorial.py --batch-size 128 --epochs 3 --bn
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

HIDDEN = (512, 256)
DROP_REMAINDER = False  # the last partial batch is trained on: an epoch is every sample


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


class TrainState(train_state.TrainState):
    """Flax's ``TrainState`` plus the BatchNorm running statistics."""

    batch_stats: Any


@jax.jit
def train_step(state: TrainState, xb: jax.Array, yb: jax.Array) -> tuple[TrainState, jax.Array]:
    """One SGD step on one batch."""

    def loss_fn(params: Any) -> Any:
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            xb,
            train=True,
            mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss, updates.get("batch_stats", state.batch_stats)

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=stats), loss


def prepare(
    x: np.ndarray, y: np.ndarray, batch_size: int, bn: bool, seed: int = 0, device: str = "cpu"
) -> Callable[[], float]:
    """Initialize once; the returned function trains one epoch and returns its seconds."""
    model = MLP(classes=int(y.max()) + 1, bn=bn)
    variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, x.shape[1])), train=False)
    created = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=optax.sgd(0.01, momentum=0.9),
        batch_stats=variables.get("batch_stats", {}),
    )
    state = [jax.device_put(created, jax.devices(device)[0])]
    rng = np.random.default_rng(seed)
    x, y = x.astype(np.float32), y.astype(np.int32)

    def epoch() -> float:
        start = time.perf_counter()
        perm = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            state[0], loss = train_step(state[0], x[idx], y[idx])
            losses.append(loss)
        np.mean(jax.device_get(losses))  # waits for the device
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

    main("jax_tutorial", run)
