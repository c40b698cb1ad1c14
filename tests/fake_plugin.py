"""A fake backend for core tests: the float64 NumPy reference MLP behind the backend contract.

Loaded through ``HARNESS_PLUGINS=fake_plugin`` (inherited by workers). ``FAKE_FAULT`` injects a
fault into cells whose id contains ``FAKE_FAULT_CELL``: ``raise``, ``segfault``, ``kill``,
``hang`` or ``nan``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.backend import Backend, BNCall, BNResult, EpochMetrics, TrainData
from harness.hookspecs import hookimpl
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
    """Register the fake backend."""
    register(INFO)


@hookimpl
def harness_register_suites(register: Callable[[Any], None]) -> None:
    """Register a tiny suite (a suite from a plugin needs no core change)."""
    register(TINY)


def _fault(step: int) -> None:
    fault = os.environ.get("FAKE_FAULT", "")
    if fault == "raise":
        raise RuntimeError("injected failure")
    if fault == "segfault":
        ctypes.string_at(0)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "hang":
        time.sleep(3600)


class FakeBackend(Backend):
    """The reference MLP; deterministic, float64, CPU only."""

    name = "fake"
    cell_id = ""

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu"]

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def build(self, spec: ModelSpec, params: Any, seed: int = 0) -> ReferenceMLP:
        if params is None:
            from harness.initializers import canonical_params

            params = canonical_params(spec, seed + 1000)
        return ReferenceMLP(spec, params, unbiased_running_var=False)

    def train(
        self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray, on_epoch: Any = None
    ) -> list[EpochMetrics]:
        faulty = os.environ.get("FAKE_FAULT_CELL", "\0") in os.environ.get("HARNESS_CELL_ID", "")
        history = []
        for epoch in range(order.shape[0]):
            start = time.perf_counter()
            losses = []
            for step, idx in enumerate(order[epoch]):
                if faulty and epoch == 0 and step == 1:
                    if os.environ.get("FAKE_FAULT") == "nan":
                        model.params["dense_0/kernel"][:] = np.nan
                    else:
                        _fault(step)
                losses.append(
                    model.step(data.x_train[idx], data.y_train[idx], spec, spec.lr_at(epoch))
                )
            val_loss, val_acc = self.evaluate(model, data.x_val, data.y_val)
            m = EpochMetrics(
                epoch + 1,
                float(np.mean(losses)),
                float("nan"),
                val_loss,
                val_acc,
                time.perf_counter() - start,
                spec.lr_at(epoch),
                np.array(losses),
            )
            history.append(m)
            if on_epoch is not None and not on_epoch(m):
                break
        return history

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
