"""Cell tasks: functions that run inside a worker with a live backend.

A task takes ``(backend, cell, emit)`` and returns the cell's result dict: ``status`` plus
whatever the suite's report needs. ``emit`` sends progress (e.g. per-epoch metrics) to the runner.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.conventions import effective, other_running_var
from harness.data import Dataset
from harness.initializers import batch_order, canonical_params
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


def _divergence(metrics: EpochMetrics) -> dict[str, int] | None:
    if math.isfinite(metrics.train_loss):
        return None
    losses = metrics.step_losses if metrics.step_losses is not None else np.array([np.nan])
    bad = np.flatnonzero(~np.isfinite(losses))
    return {"epoch": metrics.epoch, "step": int(bad[0]) + 1 if bad.size else 0}


def train_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Train the cell's MLP from the canonical (or native) init on the canonical batch order."""
    data = load_data(cell.data)
    spec = model_for(cell, data)
    seed = cell.train.seed
    params = canonical_params(spec, seed) if spec.init == "canonical" else None
    model = backend.build(spec, params, seed)
    start = backend.get_params(model)
    order = batch_order(len(data.y_train), cell.train.batch_size, cell.train.epochs, seed)
    diverged: dict[str, int] = {}

    def on_epoch(metrics: EpochMetrics) -> bool:
        emit({"type": "epoch", "metrics": metrics.to_dict()})
        bad = _divergence(metrics)
        if bad:
            diverged.update(bad)
        return bad is None

    history = backend.train(model, data.train_data(), cell.train, order, on_epoch)
    result: dict[str, Any] = {
        "status": "diverged" if diverged else "ok",
        "epochs": [m.to_dict() for m in history],
        "init_digest": params_digest(start),
        "dataset": data.info(),
        "steps_per_epoch": int(order.shape[1]),
    }
    result["conventions"] = effective(backend, spec, cell.train)
    if diverged:
        result["diverged_at"] = diverged
    else:
        result["train_mode_val_acc"] = backend.evaluate(model, data.x_val, data.y_val, True)[1]
        if spec.norm == "batchnorm":
            steps = len(history) * int(order.shape[1])
            result["other_running_var"] = other_running_var(
                backend, model, data.train_data(), result["conventions"], order.shape[2], steps
            )
    return result
