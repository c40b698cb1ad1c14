"""The MNIST experiment of Ioffe & Szegedy (2015), section 4.1, as a cell task.

The cell trains ``train.epochs`` rounds of ``extra["steps_per_round"]`` SGD steps in *one*
``backend.train`` call whose order has shape ``(rounds, steps, batch)``: the backend's per-epoch
callback fires after each round, and there the task records the validation ("test") accuracy
and the 15th/50th/85th percentiles of the inputs of a few sigmoid units of the last hidden layer
over a fixed probe batch, in eval mode (``backend.pre_activations``): the paper's Figure 1.
One call (rather than one call per round) keeps the optimizer state and the compiled loop; with
plain SGD and momentum 0 the optimizer has no state anyway. A backend without
``pre_activations`` still trains; its result says why the percentiles are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.specs import CellSpec
from harness.tasks.common import Emit, load_data, step_order
from harness.tasks.fit import fit

PERCENTILES = (15, 50, 85)


@dataclass
class InputProbe:
    """Percentiles of the activation inputs of ``units`` of hidden layer ``layer`` over ``x``."""

    backend: Backend
    x: np.ndarray
    layer: int
    units: list[int]
    steps: list[int] = field(default_factory=list)
    values: dict[str, list[list[float]]] = field(
        default_factory=lambda: {f"p{p}": [] for p in PERCENTILES}
    )
    unavailable: str = ""

    def __call__(self, model: Any, metrics: EpochMetrics, steps_per_round: int) -> None:
        """Record the percentiles after round ``metrics.epoch``."""
        if self.unavailable:
            return
        try:
            z = np.asarray(self.backend.pre_activations(model, self.x, self.layer))
        except NotImplementedError as exc:
            self.unavailable = str(exc) or "pre_activations not implemented"
            return
        table = np.percentile(z[:, self.units].astype(np.float64), PERCENTILES, axis=0)
        for p, row in zip(PERCENTILES, table):
            self.values[f"p{p}"].append([float(v) for v in row])
        self.steps.append(metrics.epoch * steps_per_round)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: which layer/units, the step of each probe and the percentile tables."""
        if self.unavailable:
            return {"unavailable": self.unavailable, "layer": self.layer, "units": self.units}
        return {
            "layer": self.layer,
            "units": self.units,
            "probe_size": int(len(self.x)),
            "steps": self.steps,
            **self.values,
        }


def ioffe_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Train in rounds, recording val accuracy and sigmoid-input percentiles after each."""
    data = load_data(cell.data)
    steps = int(cell.extra["steps_per_round"])
    rounds = cell.train.epochs
    order = step_order(len(data.y_train), cell.train.batch_size, rounds, steps, cell.train.seed)
    probe = InputProbe(
        backend,
        data.x_val[: int(cell.extra.get("probe_size", 1000))],
        len(cell.model.hidden_sizes) - 1,
        list(range(int(cell.extra.get("probe_units", 10)))),
    )
    every = max(1, rounds // int(cell.extra.get("progress_lines", 10)))
    result = fit(backend, cell, order, emit, lambda m, e: probe(m, e, steps), every)
    return {**result, "round_unit": "steps", "probe": probe.to_dict()}
