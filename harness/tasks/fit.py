"""The one training loop of every task that trains a backend's model.

:func:`fit` builds the cell's MLP from the canonical init (or the framework's own), trains it
over a given batch order ``(rounds, steps, batch)`` in *one* ``backend.train`` call (so the
optimizer state and the compiled loop carry over), and evaluates it. The backend's per-epoch
callback fires after each round (an epoch, or ``steps_per_round`` steps): :class:`RoundWatch`
stops on a NaN/inf loss, runs the task's probe outside the timed steps, and emits progress.

The result has the keys every report reads: ``status`` (``ok`` or ``diverged``, with
``diverged_at``), ``epochs`` (the per-round metrics), ``init_digest`` (proves identical starts),
``dataset``, ``steps_per_round``, ``steps_per_epoch``, ``conventions`` (what the backend says
it applied), and, when the cell finished, ``train_mode_val_acc`` (the validation set normalized
as one batch); for BN cells also ``batch_mode_val_acc`` (normalized in training-size batches,
when the suite asks with ``extra["batch_mode_samples"]``) and ``other_running_var`` (when the
caller asks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.conventions import effective, other_running_var
from harness.data import Dataset
from harness.initializers import canonical_params
from harness.specs import CellSpec
from harness.tasks.common import Emit, load_data, model_for, params_digest

Probe = Callable[[Any, EpochMetrics], None]


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
    running_var: bool = False,
    after: Callable[[Any, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the cell's model over ``order`` and evaluate it (the module docstring's keys).

    ``probe(model, metrics)`` runs after every round, outside the timed steps; progress is
    emitted every ``emit_every`` rounds and after the last. ``running_var`` adds, for a BN cell,
    the running variance the other variance convention would hold after the same steps.
    ``after(model, result)`` runs last on a cell that finished, to add the task's own keys.
    """
    data = load_data(cell.data)
    spec = model_for(cell, data)
    seed = cell.train.seed
    params = canonical_params(spec, seed) if spec.init == "canonical" else None
    model = backend.build(spec, params, seed)
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
        "conventions": effective(backend, spec, cell.train),
    }
    if watch.diverged:
        result["diverged_at"] = watch.diverged
        return result
    # Ghost-batch BN normalizes whole virtual batches: keep a multiple of their size.
    n_val = len(data.y_val) - (len(data.y_val) % spec.ghost_batch if spec.ghost_batch else 0)
    x_val, y_val = data.x_val[:n_val], data.y_val[:n_val]
    result["train_mode_val_acc"] = backend.evaluate(model, x_val, y_val, True)[1]
    if spec.norm == "batchnorm":
        samples = int(cell.extra.get("batch_mode_samples", 0))
        if samples:
            bs = cell.train.batch_size
            result["batch_mode_val_acc"] = batch_mode_accuracy(backend, model, data, bs, samples)
        if running_var:
            steps = len(history) * int(order.shape[1])
            result["other_running_var"] = other_running_var(
                backend, model, data.train_data(), result["conventions"], order.shape[2], steps
            )
    if after is not None:
        after(model, result)
    return result
