"""Differential testing of a training step: the float64 trace, derived tolerances, and a
mutation check per convention (flip one convention in one backend's real layers; the
differential test must name that backend, the layer and the quantity)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_instance

from harness.initializers import canonical_params
from harness.numerics.difftest import against_reference, diagnose, key_order, layer_spec
from harness.numerics.reference import trace_reference
from harness.reference import ReferenceMLP
from harness.specs import ModelSpec

SPEC = ModelSpec(input_size=24, hidden_sizes=(16, 12), num_classes=5, norm="batchnorm")
BATCH = 32
UNBIASED = {"torch": True, "jax": False}
"""The running-variance rule each backend's layer follows (measured by bn-numerics)."""


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 1.0, (BATCH, SPEC.input_size)).astype(np.float32)
    return x, rng.integers(0, SPEC.num_classes, BATCH)


def test_reference_trace_matches_reference_mlp() -> None:
    """The traced float64 gradients are the ReferenceMLP's, and each output's gradient is the
    finite difference of the loss under a shift of that output."""
    x, y = _batch()
    params = canonical_params(SPEC, 0)
    trace = trace_reference(SPEC, params, x, y)
    _, _, grads = ReferenceMLP(SPEC, params).loss_and_grads(x, y)
    for name, grad in grads.items():
        layer, _, leaf = name.partition("/")
        np.testing.assert_allclose(trace[f"{layer}/grad_{leaf}"], grad, rtol=1e-12, atol=1e-15)
    assert trace["dense_0/grad_kernel"] == pytest.approx(x.T.astype(float) @ trace["dense_0/grad"])


def test_tolerance_follows_reduction_length() -> None:
    """A batch-summed gradient's tolerance grows with the batch; well-conditioned errors of a
    float32 trace (the reference rounded to float32 and back) stay within it."""
    x, y = _batch()
    params = canonical_params(SPEC, 0)
    ref = trace_reference(SPEC, params, x, y)
    rounded = {k: v.astype(np.float32) for k, v in ref.items()}
    errors = against_reference(SPEC, BATCH, rounded, ref)
    assert all(e["ratio"] <= 1 for e in errors.values())
    small = against_reference(SPEC, 8, rounded, ref)
    assert errors["norm_0/grad_offset"]["tol"] > small["norm_0/grad_offset"]["tol"]


def _errors(mutated: str, mutation: str) -> dict[str, dict]:
    x, y = _batch()
    params = canonical_params(SPEC, 0)
    errors = {}
    for name, unbiased in UNBIASED.items():
        trace = backend_instance(name).trace_step(
            SPEC, params, x, y, mutate=mutation if name == mutated else ""
        )
        errors[name] = against_reference(
            SPEC, BATCH, trace, trace_reference(SPEC, params, x, y, unbiased)
        )
    return errors


def test_unmutated_step_within_tolerance() -> None:
    """With conventions mapped, every backend is within the derived tolerance everywhere."""
    assert diagnose(_errors("", ""), key_order(SPEC))["text"] == "all within tolerance"


@pytest.mark.parametrize(
    ("mutation", "mutated", "key"),
    [
        ("epsilon", "jax", "norm_0/out"),
        ("momentum", "torch", "norm_0/mean"),
        ("running_var", "torch", "norm_0/var"),
        ("placement", "jax", "norm_0/out"),
    ],
)
def test_mutation_is_named(mutation: str, mutated: str, key: str) -> None:
    """One flipped convention in one backend: blamed, at the first layer and quantity it shows."""
    found = diagnose(_errors(mutated, mutation), key_order(SPEC))
    assert found["blamed"] == [mutated], found
    assert found["key"] == key, found


def test_unknown_mutation_is_refused() -> None:
    """A misspelled mutation is an error naming the valid ones, not a silent no-op."""
    with pytest.raises(ValueError, match="running_var"):
        layer_spec(SPEC, mutate="eps")
