"""The training tasks: canonical epochs (the default task), or equal steps whatever the batch.

:func:`train_cell` trains ``train.epochs`` canonical epochs and adds, for BN cells, the running
variance of the other variance convention (the bn-vs-nobn suites report it).
:func:`train_epochs` is the sweeps' variant (the same order and model; ``batch_mode_val_acc``
when the suite asks). :func:`train_steps` trains ``train.epochs`` *rounds* of
``extra["steps_per_round"]`` steps from consecutive canonical epochs, so runs at different batch
sizes take the same number of steps; the metrics' ``epoch`` is then the round number (these
suites use a constant learning rate). All three are :func:`harness.tasks.fit.fit`.
"""

from __future__ import annotations

from typing import Any

from harness.backend import Backend
from harness.specs import CellSpec
from harness.tasks.common import Emit, epoch_order, load_data, step_order
from harness.tasks.fit import fit


def train_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Train the cell's MLP from the canonical (or native) init on the canonical batch order."""
    order = epoch_order(len(load_data(cell.data).y_train), cell)
    return fit(backend, cell, order, emit, running_var=True)


def train_epochs(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """``train.epochs`` canonical epochs (the sweeps), rounds counted in epochs."""
    order = epoch_order(len(load_data(cell.data).y_train), cell)
    return {**fit(backend, cell, order, emit), "round_unit": "epochs"}


def train_steps(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Train ``train.epochs`` rounds of ``extra["steps_per_round"]`` steps (equal-steps runs)."""
    n, train = len(load_data(cell.data).y_train), cell.train
    steps = int(cell.extra["steps_per_round"])
    order = step_order(n, train.batch_size, train.epochs, steps, train.seed)
    return {**fit(backend, cell, order, emit), "round_unit": "steps"}
