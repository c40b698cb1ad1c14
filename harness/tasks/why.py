"""Cell tasks of the research suites: ``core_cell`` (noise-injection, bn-only: the core's SGD loop
over the backend's gradients, with probes) and ``precise_cell`` (precise-bn: the backend's own
training, then evaluation with running against recomputed BN statistics).

A backend without the optional probes gets its cell ``skipped`` with the reason, found by a
tiny probe call before any training.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from harness.backend import Backend, EpochMetrics
from harness.initializers import canonical_params
from harness.specs import BN_EPSILON, CellSpec, ModelSpec
from harness.tasks.common import Emit, epoch_order, load_data, model_for, params_digest
from harness.tasks.fit import fit
from harness.why.landscape import along_gradient, covariate_shift
from harness.why.masks import trainable_mask, trained_count
from harness.why.noise import step_noise
from harness.why.sgd import CoreSGD, evaluate_precise, precise_statistics

Params = dict[str, np.ndarray]
SCALE_THRESHOLDS = (0.01, 0.05, 0.1)


def missing_probe(backend: Backend, spec: ModelSpec, params: Params, x: Any, y: Any) -> str:
    """Why the backend cannot run these suites (empty when its probes answer a tiny call)."""
    try:
        backend.loss_and_grads(spec, params, x[:4], y[:4])
        if spec.norm == "batchnorm":
            backend.batch_statistics(spec, params, x[:4])
    except NotImplementedError as exc:
        return f"{exc} (an optional probe of docs/backend-contract.md this suite needs)"
    return ""


def scale_summary(params: Params) -> dict[str, Any]:
    """Fraction of BN units whose |scale| is below each threshold (units BN switches off)."""
    scales = [np.abs(v) for k, v in params.items() if k.endswith("/scale")]
    if not scales:
        return {}
    flat = np.concatenate(scales)
    return {f"{t:g}": float(np.mean(flat < t)) for t in SCALE_THRESHOLDS}


def _probe(sgd: CoreSGD, batch: Any, noise: Any, out: tuple[float, Params], moved: Params) -> Any:
    loss, grads = out
    return {**along_gradient(sgd, batch, noise, loss, grads), **covariate_shift(
        sgd, batch, noise, grads, moved)}  # fmt: skip


def _epoch(
    sgd: CoreSGD, data: Any, order: np.ndarray, cell: CellSpec, first: int, probes: list
) -> tuple[list[float], list[float]]:
    losses, accs = [], []
    every = int(cell.extra.get("probe_every", 0))
    for k, idx in enumerate(order):
        step = first + k
        batch = (data.x_train[idx], data.y_train[idx])
        noise = step_noise(sgd.spec, cell.train.bn_noise, cell.train.seed, step)
        loss, acc, grads = sgd.grads(sgd.params, *batch, noise)
        losses.append(loss)
        accs.append(acc)
        if not math.isfinite(loss):
            break
        moved, velocity = sgd.proposal(grads)
        if every and step % every == 0:
            probes.append({"step": step, **_probe(sgd, batch, noise, (loss, grads), moved)})
        sgd.commit(moved, velocity)
    return losses, accs


def _start(backend: Backend, cell: CellSpec) -> tuple[Any, ModelSpec, Params, str]:
    """The cell's data, sized spec and canonical parameters, and why the backend cannot run it
    (its probes do not answer a tiny call; empty when they do)."""
    data = load_data(cell.data)
    spec = model_for(cell, data)
    params = canonical_params(spec, cell.train.seed)
    return data, spec, params, missing_probe(backend, spec, params, data.x_train, data.y_train)


def core_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Train with the core's SGD (noise and trainable mask of ``cell.train``), probing."""
    data, spec, params, why = _start(backend, cell)
    if why:
        return {"status": "skipped", "reason": why}
    train = cell.train
    grads0 = backend.loss_and_grads(spec, params, data.x_train[:4], data.y_train[:4])[2]
    mask = trainable_mask(spec, grads0, train.trainable, train.seed)
    sgd = CoreSGD(backend, spec, params, train.lr, train.momentum, mask)
    model = backend.build(spec, params, train.seed)
    order = epoch_order(len(data.y_train), cell)
    stat_batches = int(cell.extra.get("stat_batches", 20))
    history: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    diverged: dict[str, int] = {}
    for epoch in range(train.epochs):
        start = time.perf_counter()
        losses, accs = _epoch(sgd, data, order[epoch], cell, epoch * order.shape[1], probes)
        seconds = time.perf_counter() - start
        if not math.isfinite(losses[-1]):
            diverged = {"epoch": epoch + 1, "step": len(losses)}
            val = (math.nan, math.nan)
        else:
            val = evaluate_precise(backend, model, sgd, data, train.batch_size, stat_batches)
        metrics = EpochMetrics(
            epoch + 1, float(np.mean(losses)), float(np.mean(accs)), *val, seconds, train.lr
        )
        history.append(metrics.to_dict())
        emit({"type": "epoch", "metrics": history[-1]})
        if diverged:
            break
    result: dict[str, Any] = {
        "status": "diverged" if diverged else "ok",
        "epochs": history,
        "init_digest": params_digest(params),
        "dataset": data.info(),
        "steps_per_epoch": int(order.shape[1]),
        "trained_params": trained_count(mask, grads0),
        "total_params": trained_count(None, grads0),
        "probes": probes,
        "scale_off": scale_summary(sgd.params),
        "stat_batches": stat_batches,
    }
    if diverged:
        result["diverged_at"] = diverged
    return result


def precise_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """The backend's own training; val acc with running averages, then with precise statistics."""
    data, spec, params, why = _start(backend, cell)
    if why:
        return {"status": "skipped", "reason": why}
    train = cell.train
    order = epoch_order(len(data.y_train), cell)
    batches = int(cell.extra.get("precise_batches", 500))

    def precise(model: Any, result: dict[str, Any]) -> None:
        trained = backend.get_params(model)
        stats = precise_statistics(backend, spec, trained, data.x_train, train.batch_size, batches)
        result["running_val_acc"] = backend.evaluate(model, data.x_val, data.y_val)[1]
        backend.set_params(model, {**trained, **stats})
        result["precise_val_acc"] = backend.evaluate(model, data.x_val, data.y_val)[1]
        result["precise_batches"] = min(batches, len(data.y_train) // train.batch_size)
        result["stat_gap"] = stat_gap(trained, stats)

    return fit(backend, cell, order, emit, after=precise)


def stat_gap(running: Params, precise: Params) -> float:
    """Mean over BN units of |running mean − precise mean| / sqrt(precise var)."""
    gaps = [
        np.abs(running[k] - v) / np.sqrt(precise[k.replace("/mean", "/var")] + BN_EPSILON)
        for k, v in precise.items()
        if k.endswith("/mean")
    ]
    return float(np.mean(np.concatenate(gaps))) if gaps else math.nan
