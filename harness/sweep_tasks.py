"""Training tasks of the sweep suites: epochs or equal steps, plus BN's batch-mode accuracy.

:func:`train_epochs` is ``harness.tasks.train_cell`` (the same order, model and result keys)
plus, for BatchNorm cells, ``batch_mode_val_acc``: validation accuracy in training mode with
batches of the *training* batch size, i.e. with the batch statistics the network sees while it
trains (``train_mode_val_acc`` normalizes the whole validation set as one batch).

:func:`train_steps` trains ``train.epochs`` *rounds* of ``extra["steps_per_round"]`` steps,
whatever the batch size: the canonical per-epoch permutations, concatenated over as many epochs
as needed and cut into rounds, so the order stays rectangular ``(rounds, steps, batch)`` and one
compiled loop serves every round. The backend's per-epoch callback runs after each round, so the
metrics' ``epoch`` is the round number (these suites use a constant learning rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.data import Dataset
from harness.initializers import batch_order, canonical_params
from harness.specs import CellSpec
from harness.tasks import Emit, load_data, model_for, params_digest

Probe = Callable[[Any, EpochMetrics], None]


def step_order(n: int, batch_size: int, rounds: int, steps: int, seed: int) -> np.ndarray:
    """Sample indices ``(rounds, steps, batch_size)`` from consecutive canonical epochs."""
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {n} training samples")
    total = rounds * steps
    epochs = math.ceil(total / per_epoch)
    flat = batch_order(n, batch_size, epochs, seed).reshape(-1, batch_size)[:total]
    return flat.reshape(rounds, steps, batch_size)


@dataclass
class RoundWatch:
    """The backend's per-round callback: divergence check, probe, progress messages."""

    model: Any
    rounds: int
    emit: Emit
    probe: Probe | None = None
    emit_every: int = 1
    diverged: dict[str, int] = field(default_factory=dict)

    def __call__(self, metrics: EpochMetrics) -> bool:
        """Record one finished round; False (stop training) once the loss is NaN/inf."""
        if not math.isfinite(metrics.train_loss):
            losses = metrics.step_losses if metrics.step_losses is not None else np.array([0.0])
            bad = np.flatnonzero(~np.isfinite(losses))
            self.diverged = {"epoch": metrics.epoch, "step": int(bad[0]) + 1 if bad.size else 0}
        elif self.probe is not None:
            self.probe(self.model, metrics)
        last = metrics.epoch == self.rounds
        if self.diverged or last or metrics.epoch % self.emit_every == 0:
            self.emit({"type": "epoch", "metrics": metrics.to_dict()})
        return not self.diverged


def batch_mode_accuracy(
    backend: Backend, model: Any, data: Dataset, batch_size: int, samples: int
) -> float:
    """Validation accuracy in training mode, normalized in batches of ``batch_size``.

    Uses the first ``samples`` validation samples (whole batches only; at least one batch).
    """
    count = max(batch_size, samples - samples % batch_size)
    count = min(count, len(data.y_val) - len(data.y_val) % batch_size)
    hits = 0.0
    for i in range(0, count, batch_size):
        part = slice(i, i + batch_size)
        hits += backend.evaluate(model, data.x_val[part], data.y_val[part], True)[1] * batch_size
    return hits / count if count else math.nan


def fit(
    backend: Backend,
    cell: CellSpec,
    order: np.ndarray,
    emit: Emit,
    probe: Probe | None = None,
    emit_every: int = 1,
) -> dict[str, Any]:
    """Train the cell's model over ``order`` like ``train_cell`` does over its epochs.

    ``probe(model, metrics)`` runs after every round, outside the timed steps; progress is
    emitted every ``emit_every`` rounds and after the last.
    """
    data = load_data(cell.data)
    spec = model_for(cell, data)
    params = canonical_params(spec, cell.train.seed) if spec.init == "canonical" else None
    model = backend.build(spec, params, cell.train.seed)
    start = backend.get_params(model)
    watch = RoundWatch(model, len(order), emit, probe, emit_every)
    history = backend.train(model, data.train_data(), cell.train, order, watch)
    result: dict[str, Any] = {
        "status": "diverged" if watch.diverged else "ok",
        "epochs": [m.to_dict() for m in history],
        "init_digest": params_digest(start),
        "dataset": data.info(),
        "steps_per_round": int(order.shape[1]),
        "steps_per_epoch": len(data.y_train) // cell.train.batch_size,
    }
    if watch.diverged:
        result["diverged_at"] = watch.diverged
        return result
    # Ghost-batch BN normalizes whole virtual batches: keep a multiple of their size.
    n_val = len(data.y_val) - (len(data.y_val) % spec.ghost_batch if spec.ghost_batch else 0)
    x_val, y_val = data.x_val[:n_val], data.y_val[:n_val]
    result["train_mode_val_acc"] = backend.evaluate(model, x_val, y_val, True)[1]
    samples = int(cell.extra.get("batch_mode_samples", 0))
    if samples and spec.norm == "batchnorm":
        bs = cell.train.batch_size
        result["batch_mode_val_acc"] = batch_mode_accuracy(backend, model, data, bs, samples)
    return result


def train_epochs(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """``train_cell``'s training (``train.epochs`` canonical epochs) with the extras above."""
    data = load_data(cell.data)
    train = cell.train
    order = batch_order(len(data.y_train), train.batch_size, train.epochs, train.seed)
    return {**fit(backend, cell, order, emit), "round_unit": "epochs"}


def train_steps(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Train ``train.epochs`` rounds of ``extra["steps_per_round"]`` steps (equal-steps runs)."""
    data = load_data(cell.data)
    steps, train = int(cell.extra["steps_per_round"]), cell.train
    order = step_order(len(data.y_train), train.batch_size, train.epochs, steps, train.seed)
    return {**fit(backend, cell, order, emit), "round_unit": "steps"}
