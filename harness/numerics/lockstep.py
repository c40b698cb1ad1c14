"""The trajectory check's worker part: the backend trains, float64 follows step by step.

See :mod:`harness.numerics.trajectory` for why one ``train`` call over single-step epochs; here
the epoch callback advances the float64 :class:`ReferenceMLP` over the same batch, compares every
parameter group (:mod:`harness.numerics.drift` gives the tolerance of that step), keeps the
snapshots of :func:`harness.numerics.trajectory.kept` and a window around the first step over
tolerance, and, at that step, traces the backend's own ReLU inputs from its parameters of the
step before to count the gates float32 flipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.initializers import canonical_params
from harness.numerics.drift import Drift, relu_flips
from harness.numerics.trajectory import WINDOW, group_rel, kept, layer_groups, order_for, save_npz
from harness.reference import ReferenceMLP, running_update
from harness.specs import CellSpec, ModelSpec, replace
from harness.tasks import load_data, model_for, params_digest

Params = dict[str, np.ndarray]
EVAL_SAMPLES = 256


class Lockstep:
    """The float64 reference one step behind the backend's callback, and what it measured."""

    def __init__(self, spec: ModelSpec, params: Params, unbiased: bool, batch: int) -> None:
        """Reference in the backend's running-variance convention, plus the biased one's var."""
        self.spec, self.batch = spec, batch
        self.ref = ReferenceMLP(spec, params, unbiased_running_var=unbiased)
        self.biased_var = {k: v.copy() for k, v in self.ref.params.items() if k.endswith("/var")}
        self.groups = layer_groups(self.ref.params)
        self.drift = Drift(spec, batch, self.groups)
        self.errors: dict[str, list[float]] = {g: [0.0] for g in self.groups}
        self.tols: dict[str, list[float]] = {g: [0.0] for g in self.groups}
        self.ref_losses: list[float] = []
        self.gates: list[list[float]] = []
        self.first_over: dict[str, Any] | None = None
        self.var_shifts: dict[str, np.ndarray] = {}

    def advance(self, x: np.ndarray, y: np.ndarray, train: Any) -> list[np.ndarray]:
        """One float64 step; returns the batch's ReLU inputs (before the step)."""
        _, caches = self.ref.forward(x, training=True)
        for i, cache in enumerate(caches[:-1]):
            if "bn" in cache:
                name = f"norm_{i}/var"
                momentum = self.spec.bn_momentum
                self.biased_var[name] = running_update(
                    self.biased_var[name], cache["bn"]["var"], momentum
                )
        self.gates.append([float(np.abs(c["z"]).min()) for c in caches[:-1]])
        self.ref_losses.append(float(self.ref.step(x, y, train, train.lr)))
        return [c["z"] for c in caches[:-1]]

    def compare(self, step: int, before: Params, snap: Params) -> bool:
        """Record step ``step``'s errors and tolerances; True at the first step over."""
        tols = self.drift.step(step, before, snap)
        over = None
        for group, names in self.groups.items():
            rel = group_rel(snap, self.ref.params, names)
            self.errors[group].append(rel)
            self.tols[group].append(tols[group])
            if not rel <= tols[group] and (over is None or rel / tols[group] > over["ratio"]):
                over = {"step": step, "group": group, "rel": rel, "tol": tols[group]}
                over["ratio"] = rel / tols[group]
        if over is None or self.first_over is not None:
            return False
        self.first_over = over
        return True

    def keep_shift(self, step: int) -> None:
        """Store float64's own-convention minus biased running variance after ``step`` (0 for
        a biased backend): the report subtracts it to compare backends in one convention."""
        for k, v in self.biased_var.items():
            self.var_shifts[f"var_shift{step:03d}/{k}"] = self.ref.params[k] - v


def run_trajectory(backend: Backend, cell: CellSpec, unbiased: bool) -> dict[str, Any]:
    """Train ``cell.train.epochs`` single-batch steps with float64 in lockstep (module doc)."""
    steps, data = int(cell.train.epochs), load_data(cell.data)
    spec = model_for(cell, data)
    params = canonical_params(spec, cell.train.seed)
    model = backend.build(spec, params, cell.train.seed)
    order = order_for(len(data.y_train), cell, steps)
    lock = Lockstep(spec, params, unbiased, cell.train.batch_size)
    start = backend.get_params(model)
    snaps: dict[int, Params] = {0: start}
    losses: list[float] = []
    state: dict[str, Any] = {"prev": start, "ring": {}, "flips": None}

    def on_step(metrics: EpochMetrics) -> bool:
        step = len(losses) + 1
        idx = order[step - 1, 0]
        ref_inputs = lock.advance(data.x_train[idx], data.y_train[idx], cell.train)
        snap = backend.get_params(model)
        losses.append(float(metrics.train_loss))
        state["ring"] = {k: v for k, v in state["ring"].items() if k >= step - WINDOW}
        state["ring"][step] = snap
        if kept(step, steps):
            snaps[step] = snap
        if lock.compare(step, state["prev"], snap):
            snaps.update(state["ring"])
            state["until"] = step + WINDOW
            state["flips"] = _flips(backend, spec, state["prev"], idx, data, ref_inputs)
        if step <= state.get("until", -1):
            snaps[step] = snap
        lock.keep_shift(step)  # 768 numbers a step: kept for every step
        state["prev"] = snap
        return True

    backend.train(model, data.train_data(), replace(cell.train, epochs=steps), order, on_step)
    return {**_result(cell, lock, snaps, losses, data), "relu_flips": state["flips"]}


def _flips(
    backend: Backend, spec: ModelSpec, params: Params, idx: np.ndarray, data: Any, ref: list
) -> dict[str, Any]:
    """The backend's own ReLU inputs of this step (from its parameters before it) vs float64."""
    try:
        traced = backend.trace_step(spec, params, data.x_train[idx], data.y_train[idx])
    except Exception as exc:  # NotImplementedError: a backend without trace_step
        return {"error": f"{type(exc).__name__}: {exc}"}
    return relu_flips(spec, len(idx), traced, ref)


def _result(
    cell: CellSpec, lock: Lockstep, snaps: dict[int, Params], losses: list[float], data: Any
) -> dict[str, Any]:
    """The stored record, and the ``.npz`` of snapshots, the eval batch and the float64 shift
    of the running variance between conventions (the report's corrections)."""
    folder = cell.extra.get("artifacts") or ""
    path = Path(folder) / f"trajectory-{cell.backend}-{cell.device}.npz" if folder else None
    if path is not None:
        extra = {"loss": np.asarray(losses), "eval_x": data.x_val[:EVAL_SAMPLES]}
        save_npz(path, snaps, {**extra, **lock.var_shifts})
    return {
        "steps": len(losses),
        "batch_size": cell.train.batch_size,
        "optimizer": f"{cell.train.optimizer} lr {cell.train.lr} momentum {cell.train.momentum}",
        "unbiased_reference": lock.ref.unbiased_running_var,
        "losses": losses,
        "ref_losses": lock.ref_losses,
        "ref_min_abs_relu_input": lock.gates,
        "ref_rel_error": lock.errors,
        "tolerance": lock.tols,
        "first_over": lock.first_over,
        "stored_steps": sorted(snaps),
        "init_digest": params_digest(snaps[0]),
        "npz": str(path.resolve()) if path is not None else "",
    }
