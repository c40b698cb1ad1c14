"""The trajectory check: the bn-vs-nobn MLP trained N steps, parameters snapshotted every step.

One :meth:`Backend.train` call over a batch order of shape ``(N, 1, batch)``: every "epoch" is a
single step, so the epoch callback sees the parameters after each step, while the optimizer (and
its momentum buffer) lives through the whole call and the step compiles once. Re-calling ``train``
per step would re-create the optimizer and lose SGD momentum; retraining ``order[:, :k]`` from
scratch would cost O(N^2) steps. The float64 :class:`ReferenceMLP` takes the same steps in the
worker, with the running-variance convention measured for this backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.initializers import batch_order, canonical_params
from harness.numerics.errors import max_rel
from harness.reference import ReferenceMLP
from harness.specs import CellSpec, replace
from harness.tasks import load_data, model_for, params_digest

Params = dict[str, np.ndarray]


def _order(n: int, cell: CellSpec, steps: int) -> np.ndarray:
    """The first ``steps`` batches of the canonical epoch-0 order, one per 'epoch'."""
    order = batch_order(n, cell.train.batch_size, 1, cell.train.seed)[0]
    if steps > len(order):
        raise ValueError(f"{steps} trajectory steps need {steps} batches; there are {len(order)}")
    return order[:steps, None, :]


def _snapshots(backend: Backend, cell: CellSpec, steps: int) -> tuple[list[Params], list[float]]:
    data = load_data(cell.data)
    spec = model_for(cell, data)
    model = backend.build(spec, canonical_params(spec, cell.train.seed), cell.train.seed)
    snaps, losses = [backend.get_params(model)], []

    def on_step(metrics: EpochMetrics) -> bool:
        snaps.append(backend.get_params(model))
        losses.append(float(metrics.train_loss))
        return True

    order = _order(len(data.y_train), cell, steps)
    backend.train(model, data.train_data(), replace(cell.train, epochs=steps), order, on_step)
    return snaps, losses


def _reference(cell: CellSpec, steps: int, unbiased: bool) -> tuple[list[Params], list[Any]]:
    """Float64 snapshots, and per step the loss and each hidden layer's smallest |ReLU input|.

    A ReLU input closer to zero than float32 resolves can switch the gate in float32 but not in
    float64: that unit's gradient then differs outright, which shows as a jump in the error.
    """
    data = load_data(cell.data)
    spec = model_for(cell, data)
    ref = ReferenceMLP(spec, canonical_params(spec, cell.train.seed), unbiased_running_var=unbiased)
    snaps, per_step = [{k: v.copy() for k, v in ref.params.items()}], []
    for (idx,) in _order(len(data.y_train), cell, steps):
        _, caches = ref.forward(data.x_train[idx], training=True)
        gates = [float(np.abs(c["z"]).min()) for c in caches[:-1]]
        loss = ref.step(data.x_train[idx], data.y_train[idx], cell.train, cell.train.lr)
        per_step.append((loss, gates))
        snaps.append({k: v.copy() for k, v in ref.params.items()})
    return snaps, per_step


def layer_groups(params: Params) -> dict[str, list[str]]:
    """Arrays compared together: ``dense_i`` (kernel, bias), ``norm_i`` (scale, offset) and
    ``norm_i stats`` (running mean, var).

    Grouping matters: a Dense bias in front of BN gets a zero gradient in exact arithmetic, so
    on its own its relative error would compare rounding noise with zero.
    """
    groups: dict[str, list[str]] = {}
    for name in sorted(params):
        layer, _, leaf = name.partition("/")
        groups.setdefault(f"{layer} stats" if leaf in ("mean", "var") else layer, []).append(name)
    return groups


def group_rel(params: Params, ref: Params, names: list[str]) -> float:
    """Max-norm relative difference of a group of arrays taken as one vector."""
    flat = np.concatenate([np.ravel(params[n]).astype(np.float64) for n in names])
    return max_rel(flat, np.concatenate([np.ravel(ref[n]) for n in names]))


def save_npz(path: Path, snaps: list[Params], losses: list[float]) -> None:
    """Per-step parameters as ``step{k:03d}/{name}`` (step 0 = the start) plus ``loss``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"step{k:03d}/{name}": v for k, snap in enumerate(snaps) for name, v in snap.items()}
    arrays["loss"] = np.asarray(losses, np.float64)
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_npz(path: str | Path) -> tuple[list[Params], np.ndarray]:
    """Inverse of :func:`save_npz`."""
    with np.load(path) as data:
        snaps: dict[int, Params] = {}
        for key in data.files:
            if key.startswith("step"):
                step, name = key.split("/", 1)
                snaps.setdefault(int(step[4:]), {})[name] = data[key]
        return [snaps[k] for k in sorted(snaps)], data["loss"]


def run_trajectory(backend: Backend, cell: CellSpec, unbiased: bool) -> dict[str, Any]:
    """Train ``cell.train.epochs`` single-batch steps; compare every step with float64.

    Stores per-step losses (backend and reference), per-step per-parameter max-norm relative
    error against the reference, and the path of the per-step parameter ``.npz``.
    """
    steps = int(cell.train.epochs)
    snaps, losses = _snapshots(backend, cell, steps)
    ref_snaps, ref_steps = _reference(cell, steps, unbiased)
    errors = {
        group: [group_rel(s, r, names) for s, r in zip(snaps, ref_snaps)]
        for group, names in layer_groups(snaps[0]).items()
    }
    folder = cell.extra.get("artifacts") or ""
    path = Path(folder) / f"trajectory-{cell.backend}-{cell.device}.npz" if folder else None
    if path is not None:
        save_npz(path, snaps, losses)
    return {
        "steps": steps,
        "batch_size": cell.train.batch_size,
        "optimizer": f"{cell.train.optimizer} lr {cell.train.lr} momentum {cell.train.momentum}",
        "unbiased_reference": unbiased,
        "losses": losses,
        "ref_losses": [float(loss) for loss, _ in ref_steps],
        "ref_min_abs_relu_input": [gates for _, gates in ref_steps],
        "ref_rel_error": errors,
        "init_digest": params_digest(snaps[0]),
        "npz": str(path.resolve()) if path is not None else "",
    }
