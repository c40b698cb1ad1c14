"""The derived limit of the K-step Adam conformance check: float32 arithmetic passes it, a
real error (Adam's epsilon inside the root, a wrong learning rate) fails it.

The float64 fake backend is the reference; a float32 copy of it shows what rounding alone does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from fake_plugin import FakeBackend

from harness.backend import TrainData
from harness.conformance import OPTIMIZERS, SPECS, k_steps_match
from harness.specs import TrainSpec


class MutatedAdam(FakeBackend):
    """The fake backend with one deliberate Adam error, or float32 parameters after each step."""

    def __init__(self, mutation: str):
        super().__init__("cpu", 1)
        self.mutation = mutation

    def build(self, spec: Any, params: Any, seed: int = 0) -> Any:
        model = super().build(spec, params, seed)
        if self.mutation == "eps-inside-root":

            def adam(name: str, grad: np.ndarray, train: TrainSpec, t: int) -> np.ndarray:
                m = (
                    train.adam_beta1 * model.state.get(f"{name}/m", 0)
                    + (1 - train.adam_beta1) * grad
                )
                v = model.state.get(f"{name}/v", 0) * train.adam_beta2
                v = v + (1 - train.adam_beta2) * grad * grad
                model.state[f"{name}/m"], model.state[f"{name}/v"] = m, v
                m_hat, v_hat = m / (1 - train.adam_beta1**t), v / (1 - train.adam_beta2**t)
                return m_hat / np.sqrt(v_hat + train.adam_epsilon)  # type: ignore[no-any-return]

            model._adam = adam
        return model

    def train(self, model: Any, data: TrainData, spec: TrainSpec, order: Any, on_epoch: Any = None):
        if self.mutation == "lr":
            spec = dataclasses.replace(spec, lr=spec.lr * 1.001)
        history = super().train(model, data, spec, order, on_epoch)
        if self.mutation == "float32":
            model.params = {
                k: v.astype(np.float32).astype(np.float64) for k, v in model.params.items()
            }
        return history


def k_steps(spec: str) -> Any:
    return k_steps_match(SPECS[spec], OPTIMIZERS["adam"])


@pytest.mark.parametrize("spec", ["ln", "bn", "nobn"])
def test_reference_and_float32_rounding_pass(spec: str) -> None:
    k_steps(spec)(MutatedAdam(""))
    k_steps(spec)(MutatedAdam("float32"))


@pytest.mark.parametrize("mutation", ["eps-inside-root", "lr"])
@pytest.mark.parametrize("spec", ["ln", "bn"])
def test_a_real_adam_error_exceeds_the_derived_limit(spec: str, mutation: str) -> None:
    with pytest.raises(AssertionError, match="limit"):
        k_steps(spec)(MutatedAdam(mutation))
