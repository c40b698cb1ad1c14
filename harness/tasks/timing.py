"""The timing suite's cell task: one backend at one batch size, measured against its baselines.

Six training loops live in the worker at once: the harness's own (``backend.train``, one call
per epoch on the canonical batch order) and the backend's ``expert`` and ``tutorial`` baseline
scripts (:mod:`harness.baselines`), each without and with BatchNorm. Every loop runs a first
epoch (compilation, warm-up: reported apart), ``warmup`` uncounted epochs, then ``rounds``
rounds of one epoch per loop, in an order rotated every round, so that drift and noise from a
shared machine hit every loop alike and paired ratios (harness / expert in the same round)
cancel most of it. Every epoch time is read after the device has finished (the backend's
``train`` and each baseline synchronize before their clock read). The task also measures the
backend's float32 GEMM rate on the MLP's own shapes, before and after the rounds, for the
roofline, and the worker's peak RSS. It imports no framework: the backend and the baseline
modules do.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import baselines
from harness.backend import Backend, EpochMetrics, TrainData
from harness.data import Dataset
from harness.environment import THREAD_VARS, WAIT_POLICY, OtherLoad
from harness.initializers import batch_order, canonical_params
from harness.roofline import eval_flops, train_shapes, train_step_flops
from harness.specs import CellSpec, ModelSpec, TrainSpec, replace
from harness.tasks.common import Emit, load_data, model_for

KINDS = ("expert", "tutorial")


@dataclass
class Loop:
    """One timed training loop: ``epoch()`` trains one epoch and returns its seconds."""

    kind: str
    bn: bool
    epoch: Callable[[], float]
    samples: int
    source: str = ""
    first_s: float = math.nan
    times_s: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``kind/bn`` or ``kind/no-bn``."""
        return f"{self.kind}/{'bn' if self.bn else 'no-bn'}"

    @property
    def history(self) -> list[EpochMetrics]:
        """The harness's epoch metrics (empty for a baseline)."""
        return self.epoch.history if isinstance(self.epoch, HarnessEpochs) else []

    def to_dict(self) -> dict[str, Any]:
        """The stored record of the loop's measurements."""
        return {
            "kind": self.kind,
            "bn": self.bn,
            "samples": self.samples,
            "source": self.source,
            "first_s": self.first_s,
            "times_s": self.times_s,
            "eval_s": [float(m.extra.get("eval_s", math.nan)) for m in self.history],
        }


@dataclass
class HarnessEpochs:
    """``backend.train`` over the next epoch of ``order``, one call per epoch (the time is the
    backend's own ``time_s``: the epoch's steps, after the device has finished)."""

    backend: Backend
    model: Any
    data: TrainData
    train: TrainSpec
    order: np.ndarray
    history: list[EpochMetrics] = field(default_factory=list)

    def __call__(self) -> float:
        """Train one epoch; its seconds."""
        part = self.order[len(self.history) % len(self.order)][None]
        metrics = self.backend.train(self.model, self.data, self.train, part)[0]
        self.history.append(metrics)
        return metrics.time_s


def bn_spec(spec: ModelSpec, bn: bool) -> ModelSpec:
    """The cell's MLP without or with BatchNorm."""
    return replace(spec, norm="batchnorm" if bn else "none")


def harness_loop(backend: Backend, cell: CellSpec, data: Dataset, bn: bool, epochs: int) -> Loop:
    """The backend's own training loop on the canonical init and batch order."""
    spec, seed, bs = bn_spec(model_for(cell, data), bn), cell.train.seed, cell.train.batch_size
    model = backend.build(spec, canonical_params(spec, seed), seed)
    order = batch_order(len(data.y_train), bs, epochs, seed)
    epochs_fn = HarnessEpochs(backend, model, data.train_data(), cell.train, order)
    return Loop("harness", bn, epochs_fn, order.shape[1] * bs, type(backend).__module__)


def baseline_loop(backend: str, kind: str, cell: CellSpec, data: Dataset, bn: bool) -> Loop | None:
    """The backend's ``kind`` baseline script prepared in this worker, or None without one."""
    path = baselines.find(backend, kind)
    if path is None:
        return None
    module = baselines.load(path)
    bs = cell.train.batch_size
    epoch = module.prepare(data.x_train, data.y_train, bs, bn, cell.train.seed, cell.device)
    samples = baselines.epoch_samples(module, len(data.y_train), bs)
    return Loop(kind, bn, epoch, samples, str(path))


def make_loops(backend: Backend, cell: CellSpec, data: Dataset, epochs: int) -> dict[str, Any]:
    """Every loop of the cell, plus the baselines that could not be prepared and why."""
    loops: list[Loop] = []
    errors: dict[str, str] = {}
    kinds = tuple(cell.extra.get("baselines", KINDS))
    for bn in (False, True):
        loops.append(harness_loop(backend, cell, data, bn, epochs))
        for kind in kinds:
            try:
                made = baseline_loop(backend.name, kind, cell, data, bn)
            except Exception as exc:  # a broken baseline is reported, the harness still timed
                errors[kind] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                continue
            if made is not None:
                loops.append(made)
    return {"loops": loops, "errors": errors}


def gemm_rates(backend: Backend, spec: ModelSpec, batch: int, repeats: int) -> list[float]:
    """The backend's GEMM rates on a training step's shapes; empty when it cannot say."""
    try:
        return list(backend.matmul_rates(train_shapes(spec, batch), repeats))
    except NotImplementedError:
        return []


def timed(loop: Loop) -> float:
    """One epoch of ``loop`` with the garbage collector paused (it runs between epochs)."""
    gc.disable()
    try:
        return loop.epoch()
    finally:
        gc.enable()


def run_rounds(
    loops: list[Loop], rounds: int, warmup: int, progress: Callable[[int], None]
) -> None:
    """First epochs, warm-up epochs, then ``rounds`` rotated rounds of one epoch per loop."""
    for loop in loops:
        loop.first_s = timed(loop)
    for _ in range(warmup):
        for loop in loops:
            timed(loop)
    for r in range(rounds):
        shift = r % len(loops)
        for loop in loops[shift:] + loops[:shift]:
            loop.times_s.append(timed(loop))
        progress(r + 1)


def peak_rss_mb() -> float:
    """The worker's peak resident set so far, in MB (``ru_maxrss``: KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _progress(emit: Emit, loop: Loop) -> Callable[[int], None]:
    """Progress after each round: the harness's no-BN epoch time, loss and accuracy."""

    def report(done: int) -> None:
        metrics: dict[str, Any] = {"epoch": done, "time_s": loop.times_s[-1]}
        if loop.history:
            last = loop.history[-1]
            metrics.update(train_loss=last.train_loss, val_acc=last.val_acc)
        emit({"type": "epoch", "metrics": metrics})

    return report


def time_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """Time the harness and the baselines at the cell's batch size, BN off and on."""
    data = load_data(cell.data)
    spec, bs = model_for(cell, data), cell.train.batch_size
    rounds, warmup = cell.train.epochs, int(cell.extra.get("warmup", 1))
    repeats = int(cell.extra.get("gemm_repeats", 5))
    rss_start, others = peak_rss_mb(), OtherLoad()
    made = make_loops(backend, cell, data, rounds + warmup + 1)
    gc.collect()
    loops: list[Loop] = made["loops"]
    rates = gemm_rates(backend, spec, bs, repeats)
    run_rounds(loops, rounds, warmup, _progress(emit, loops[0]))
    rates += gemm_rates(backend, spec, bs, repeats)
    steps = len(data.y_train) // bs
    return {
        "status": "ok",
        "dataset": data.info(),
        "batch_size": bs,
        "steps_per_epoch": steps,
        "rounds": rounds,
        "warmup": warmup,
        "loops": {loop.key: loop.to_dict() for loop in loops},
        "baseline_errors": made["errors"],
        "gemm": {
            "rates": rates,
            "step_flops": train_step_flops(spec, bs),
            "eval_flops": eval_flops(spec, len(data.y_val)),
            "shapes": [list(s) for s in train_shapes(spec, bs)],
        },
        "thread_env": {key: os.environ.get(key, "") for key in (*THREAD_VARS, WAIT_POLICY)},
        "others_cpu_share": others.share(),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_mb": rss_start,
        "epochs": [m.to_dict() for m in loops[0].history],
    }
