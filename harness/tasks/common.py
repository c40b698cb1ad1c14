"""What every task shares: the worker's dataset cache, the model spec sized to the data, the
digest of the starting weights, and the batch orders (canonical epochs, or equal steps)."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.data import Dataset
from harness.initializers import batch_order
from harness.specs import CellSpec, DataSpec, ModelSpec, replace

Emit = Callable[[dict[str, Any]], None]


@functools.lru_cache(maxsize=4)
def load_data(spec: DataSpec) -> Dataset:
    """Load a dataset once per worker (cells of a run share it)."""
    from harness.plugins import get_plugins

    return get_plugins().datasets.get(spec.name).load(spec)  # type: ignore[no-any-return]


def params_digest(params: dict[str, np.ndarray]) -> str:
    """SHA-256 of the canonical arrays (names and bytes), to prove identical starts."""
    digest = hashlib.sha256()
    for name in sorted(params):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(params[name], np.float32).tobytes())
    return digest.hexdigest()[:16]


def model_for(cell: CellSpec, data: Dataset) -> ModelSpec:
    """The cell's model spec sized to the dataset."""
    return replace(cell.model, input_size=data.input_size, num_classes=data.num_classes)


def epoch_order(n: int, cell: CellSpec) -> np.ndarray:
    """The canonical order of the cell's ``train.epochs`` epochs: ``(epochs, steps, batch)``."""
    train = cell.train
    return batch_order(n, train.batch_size, train.epochs, train.seed)


def step_order(n: int, batch_size: int, rounds: int, steps: int, seed: int) -> np.ndarray:
    """Sample indices ``(rounds, steps, batch_size)`` from consecutive canonical epochs.

    The canonical per-epoch permutations, concatenated over as many epochs as needed and cut into
    rounds, so the order stays rectangular and one compiled loop serves every round.
    """
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {n} training samples")
    total = rounds * steps
    epochs = math.ceil(total / per_epoch)
    flat = batch_order(n, batch_size, epochs, seed).reshape(-1, batch_size)[:total]
    return flat.reshape(rounds, steps, batch_size)
