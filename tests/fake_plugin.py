"""A fake backend for core tests: the float64 NumPy reference MLP behind the backend contract.

Loaded through ``HARNESS_PLUGINS=fake_plugin`` (inherited by workers). ``FAKE_FAULT`` injects a
fault into cells whose id contains ``FAKE_FAULT_CELL``: ``raise``, ``segfault``, ``kill``,
``hang``, ``oom`` (allocate until ``RLIMIT_AS``), ``nan`` or ``killparent`` (SIGKILL to the
worker's parent: under the ray executor, the Ray worker running the cell's task);
``FAKE_FAULTS`` injects several, as ``"CELL_PART=FAULT;CELL_PART=FAULT"``. The fault strikes at
the second step of the first epoch, after a line on stderr and, when ``FAKE_FAULT_MARK`` names
a file, after writing the cell id there (so a test knows the fault has begun).
``FAKE_GHOST=1`` also registers ``ghost``, a backend whose framework is not installed.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.backend import Backend, BNCall, BNResult, EpochMetrics, TrainData
from harness.hookspecs import hookimpl
from harness.numerics.ghost import NormReferenceMLP
from harness.reference import ReferenceMLP, softmax_xent
from harness.registry import BackendInfo
from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

INFO = BackendInfo(
    name="fake",
    factory="fake_plugin:FakeBackend",
    requires=("numpy",),
    description="float64 NumPy reference (tests only)",
)
GHOST = BackendInfo(
    name="ghost",
    factory="ghost_framework_backend:GhostBackend",
    requires=("ghost_framework_that_is_not_installed",),
    description="a backend whose framework is missing (tests only)",
    extra="ghost",
)
OOM_HEADROOM = 256 << 20
TINY = Suite(
    name="tiny",
    description="tiny synthetic suite for tests",
    model=ModelSpec(hidden_sizes=(16,)),
    train=TrainSpec(lr=0.05, batch_size=50, epochs=2),
    variants=(Variant("no-bn", {"norm": "none"}), Variant("bn", {"norm": "batchnorm"})),
    sweep={"train.lr": (0.05, 0.1)},
    seeds=2,
    quick={"epochs": 1, "seeds": 1, "train.lr": (0.05,)},
)


@hookimpl
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register the fake backend (and ``ghost`` when ``FAKE_GHOST=1``)."""
    register(INFO)
    if os.environ.get("FAKE_GHOST") == "1":
        register(GHOST)


@hookimpl
def harness_register_suites(register: Callable[[Any], None]) -> None:
    """Register a tiny suite (a suite from a plugin needs no core change)."""
    register(TINY)


def cell_fault() -> str:
    """The fault to inject into the current cell (``HARNESS_CELL_ID``), or ``""``."""
    cell = os.environ.get("HARNESS_CELL_ID", "")
    pairs = [p.rpartition("=")[::2] for p in os.environ.get("FAKE_FAULTS", "").split(";") if p]
    pairs.append((os.environ.get("FAKE_FAULT_CELL", "\0"), os.environ.get("FAKE_FAULT", "")))
    return next((fault for part, fault in pairs if part and part in cell), "")


def _out_of_memory() -> None:
    """Cap the address space a little above what is mapped now, then allocate past it."""
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (mapped + OOM_HEADROOM, hard))
    hog = []
    while True:
        hog.append(np.ones(16 << 20, np.uint8))


def _fault(fault: str, model: ReferenceMLP) -> None:
    if fault == "nan":  # the weights go bad: the loss is NaN from the next step on
        model.params["dense_0/kernel"][:] = np.nan
        return
    cell = os.environ.get("HARNESS_CELL_ID", "")
    print(f"fake_plugin: injecting {fault} into {cell}", file=sys.stderr, flush=True)
    if os.environ.get("FAKE_FAULT_MARK"):
        with open(os.environ["FAKE_FAULT_MARK"], "a") as mark:
            mark.write(cell + "\n")
    if fault == "raise":
        raise RuntimeError("injected failure")
    if fault == "segfault":
        ctypes.string_at(0)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "killparent":
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(3600)  # this worker then dies with its parent
    if fault == "hang":
        time.sleep(3600)
    if fault == "oom":
        _out_of_memory()


class FakeBackend(Backend):
    """The reference MLP; deterministic, float64, CPU only."""

    name = "fake"
    cell_id = ""
    model_features = ("groupnorm", "ghost-batch")

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu"]

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def build(self, spec: ModelSpec, params: Any, seed: int = 0) -> ReferenceMLP:
        if params is None:
            from harness.initializers import canonical_params

            params = canonical_params(spec, seed + 1000)
        return NormReferenceMLP(spec, params, unbiased_running_var=False)

    def train(
        self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray, on_epoch: Any = None
    ) -> list[EpochMetrics]:
        fault = cell_fault()
        history = []
        for epoch in range(order.shape[0]):
            start = time.perf_counter()
            losses = []
            for step, idx in enumerate(order[epoch]):
                if fault and epoch == 0 and step == 1:
                    _fault(fault, model)
                losses.append(
                    model.step(data.x_train[idx], data.y_train[idx], spec, spec.lr_at(epoch))
                )
            history.append(self._metrics(model, data, epoch, losses, start, spec.lr_at(epoch)))
            if on_epoch is not None and not on_epoch(history[-1]):
                break
        return history

    def _metrics(
        self, model: Any, data: TrainData, epoch: int, losses: list[float], start: float, lr: float
    ) -> EpochMetrics:
        """The epoch's metrics; train accuracy in eval mode over the training set."""
        seconds = time.perf_counter() - start
        train_acc = self.evaluate(model, data.x_train, data.y_train)[1]
        val_loss, val_acc = self.evaluate(model, data.x_val, data.y_val)
        return EpochMetrics(
            epoch + 1,
            float(np.mean(losses)),
            train_acc,
            val_loss,
            val_acc,
            seconds,
            lr,
            np.array(losses),
        )

    def evaluate(
        self, model: Any, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, float]:
        logits = self.logits(model, x, training)
        return softmax_xent(logits, y)[0], float((logits.argmax(1) == y).mean())

    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        return model.forward(x, training=training)[0]

    def get_params(self, model: Any) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) for k, v in model.params.items()}

    def set_params(self, model: Any, params: dict[str, np.ndarray]) -> None:
        model.params = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}

    def batchnorm(self, x: np.ndarray, params: Any, call: BNCall, upstream: np.ndarray) -> BNResult:
        raise NotImplementedError
