"""Benchmarks: one train step, one epoch and one eval pass of the timing suite's MLP.

Parametrized (``conftest.py``) over backends x BN off/on x batch size (the eval pass over
backends x BN: it evaluates the whole validation set at once), on ``mnist-5k`` (4,000 training
and 1,000 validation images, 784 features). Each benchmark uses the backend's own
compiled step (:meth:`harness.backend.Backend.stepper`) and returns only after the device has
finished, so pytest-benchmark's clock reads follow a synchronization. Warm-up rounds (the first
compiles) are explicit and not measured; each round gets a fresh batch or epoch of the
canonical batch order, prepared outside the clock; the garbage collector is off inside a round
and runs between rounds.
"""

from __future__ import annotations

import gc
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from harness.backend import TrainData
from harness.initializers import batch_order, canonical_params
from harness.specs import DataSpec, ModelSpec, TrainSpec, replace
from harness.tasks.common import load_data

MODEL = ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before")
ROUNDS = {"step": (200, 20), "epoch": (10, 2), "eval": (30, 3)}
"""(measured rounds, warm-up rounds) per benchmark kind."""


@dataclass
class Case:
    """A built model on the data, with the batch order its rounds draw from."""

    backend: Any
    model: Any
    data: TrainData
    train: TrainSpec
    order: np.ndarray


def build(backend: Any, bn: bool, batch_size: int) -> Case:
    """The timing suite's MLP, canonical init, BN off or on, batch order at ``batch_size``."""
    data = load_data(DataSpec(name="mnist-5k"))
    norm = "batchnorm" if bn else "none"
    spec = replace(MODEL, norm=norm, input_size=data.input_size, num_classes=data.num_classes)
    train = TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=batch_size)
    model = backend.build(spec, canonical_params(spec, 0), 0)
    gc.collect()  # a clean heap; rounds then run with the collector off (conftest.py)
    order = batch_order(len(data.y_train), batch_size, sum(ROUNDS["epoch"]) + 1, 0)
    return Case(backend, model, data.train_data(), train, order)


@pytest.fixture
def case(backend: Any, bn: bool, batch_size: int) -> Case:
    """A model to train at ``batch_size``."""
    return build(backend, bn, batch_size)


@pytest.fixture
def eval_case(backend: Any, bn: bool) -> Case:
    """A model to evaluate (the whole validation set at once: no batch size)."""
    return build(backend, bn, 128)


def _feeder(parts: Any) -> Any:
    """A pedantic ``setup``: the next index array as the target's argument."""
    cycle = itertools.cycle(parts)

    def setup() -> tuple[tuple[np.ndarray], dict[str, Any]]:
        return (next(cycle),), {}

    return setup


def stepper(case: Case) -> Any:
    """The backend's optional compiled step runner; skipped with the reason when it has none."""
    try:
        return case.backend.stepper(case.model, case.data, case.train)
    except NotImplementedError as exc:
        pytest.skip(f"backend '{case.backend.name}' has no stepper (optional): {exc}")


def _info(benchmark: Any, case: Case, samples: int) -> None:
    benchmark.extra_info.update(
        samples=samples, device=case.backend.device, threads=case.backend.threads
    )


def test_train_step(benchmark: Any, case: Case) -> None:
    """One optimizer step on one batch (the epoch's compiled loop with one step)."""
    benchmark.group = "train step"
    run = stepper(case)
    steps = case.order.reshape(-1, 1, case.order.shape[-1])  # each part: one step
    rounds, warmup = ROUNDS["step"]
    _info(benchmark, case, case.order.shape[-1])
    benchmark.pedantic(run, setup=_feeder(steps), rounds=rounds, warmup_rounds=warmup)


def test_train_epoch(benchmark: Any, case: Case) -> None:
    """One epoch (every full batch of the training set once)."""
    benchmark.group = "train epoch"
    run = stepper(case)
    rounds, warmup = ROUNDS["epoch"]
    _info(benchmark, case, case.order.shape[1] * case.order.shape[2])
    benchmark.pedantic(run, setup=_feeder(case.order), rounds=rounds, warmup_rounds=warmup)


def test_eval_pass(benchmark: Any, eval_case: Case) -> None:
    """One evaluation pass over the validation set in eval mode (running statistics)."""
    case = eval_case
    benchmark.group = "eval pass"
    x, y = case.data.x_val, case.data.y_val
    rounds, warmup = ROUNDS["eval"]
    _info(benchmark, case, len(y))

    def setup() -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
        return (x, y), {}

    benchmark.pedantic(
        lambda xs, ys: case.backend.evaluate(case.model, xs, ys),
        setup=setup,
        rounds=rounds,
        warmup_rounds=warmup,
    )
