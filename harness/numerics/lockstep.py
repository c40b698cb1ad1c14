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

from harness.backend import Backend, EpochMetrics, TrainData
from harness.initializers import canonical_params
from harness.numerics.drift import Drift, relu_flips
from harness.numerics.trajectory import WINDOW, group_rel, kept, layer_groups, order_for, save_npz
from harness.reference import ReferenceMLP, running_update
from harness.specs import CellSpec, ModelSpec, replace
from harness.tasks.common import load_data, model_for, params_digest

Params = dict[str, np.ndarray]
EVAL_SAMPLES = 256
VAL_SAMPLES = 64


class _Recording(ReferenceMLP):
    """The float64 MLP, keeping the caches of its last forward pass (the step's own)."""

    last: list[dict[str, Any]]

    def forward(
        self, x: np.ndarray, training: bool, update: bool = False
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """:meth:`ReferenceMLP.forward`, remembering the caches."""
        logits, self.last = super().forward(x, training, update)
        return logits, self.last


class Lockstep:
    """The float64 reference one step behind the backend's callback, and what it measured."""

    def __init__(self, spec: ModelSpec, params: Params, unbiased: bool, batch: int) -> None:
        """Reference in the backend's running-variance convention, plus the biased one's var."""
        self.spec, self.batch = spec, batch
        self.ref = _Recording(spec, params, unbiased_running_var=unbiased)
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
        self.ref_losses.append(float(self.ref.step(x, y, train, train.lr)))
        caches = self.ref.last
        for i, cache in enumerate(caches[:-1]):
            if "bn" in cache:
                name = f"norm_{i}/var"
                momentum = self.spec.bn_momentum
                self.biased_var[name] = running_update(
                    self.biased_var[name], cache["bn"]["var"], momentum
                )
        self.gates.append([float(np.abs(c["z"]).min()) for c in caches[:-1]])
        return [c["z"] for c in caches[:-1]]

    def compare(self, step: int, before: Params, snap: Params) -> bool:
        """Record step ``step``'s errors and tolerances; True at the first step over."""
        tols = self.drift.step(step, before, snap)
        over: dict[str, Any] | None = None
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
    state: dict[str, Any] = {"ring": {0: start}, "inputs": {}, "flips": None}

    def on_step(metrics: EpochMetrics) -> bool:
        step = len(losses) + 1
        idx = order[step - 1, 0]
        inputs = lock.advance(data.x_train[idx], data.y_train[idx], cell.train)
        snap = backend.get_params(model)
        losses.append(float(metrics.train_loss))
        ring = {k: v for k, v in state["ring"].items() if k >= step - WINDOW}
        state["ring"], state["inputs"] = (
            {**ring, step: snap},
            {
                **{k: v for k, v in state["inputs"].items() if k > step - WINDOW},
                step: inputs,
            },
        )
        if kept(step, steps):
            snaps[step] = snap
        if lock.compare(step, ring[step - 1], snap):
            snaps.update(state["ring"])
            state["until"] = step + WINDOW
            state["flips"] = _window_flips(backend, spec, state, order, data)
        if step <= state.get("until", -1):
            snaps[step] = snap
        lock.keep_shift(step)  # 768 numbers a step: kept for every step
        return True

    # every "epoch" ends with the backend's validation pass: a tiny validation set keeps those
    # 250 passes from costing more than the steps (they are not what this check measures)
    train = data.train_data()
    train = TrainData(
        train.x_train, train.y_train, train.x_val[:VAL_SAMPLES], train.y_val[:VAL_SAMPLES]
    )
    backend.train(model, train, replace(cell.train, epochs=steps), order, on_step)
    return {**_result(cell, lock, snaps, losses, data), "relu_flips": state["flips"]}


def _window_flips(
    backend: Backend, spec: ModelSpec, state: dict[str, Any], order: np.ndarray, data: Any
) -> dict[str, Any]:
    """ReLU sign changes against float64 at each of the last ``WINDOW`` steps up to the first
    step over tolerance (the jump that crossed it may come a step or two before): the backend's
    own ReLU inputs of step ``j``, traced from its parameters after step ``j - 1``."""
    per_step: dict[str, Any] = {}
    for step, inputs in sorted(state["inputs"].items()):
        idx = order[step - 1, 0]
        try:
            x, y = data.x_train[idx], data.y_train[idx]
            traced = backend.trace_step(spec, state["ring"][step - 1], x, y)
        except Exception as exc:  # NotImplementedError: a backend without trace_step
            return {"error": f"{type(exc).__name__}: {exc}"}
        per_step[str(step)] = relu_flips(spec, len(idx), traced, inputs)
    flipped = sum(v["flipped"] for v in per_step.values())
    near = sum(v["near_zero"] for v in per_step.values())
    return {
        "steps": per_step,
        "flipped": flipped,
        "near_zero": near,
        "relu_cause": flipped > 0 and near == flipped,
        "at": [int(k) for k, v in per_step.items() if v["flipped"]],
    }


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
