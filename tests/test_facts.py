"""The framework facts the project relies on (docs/numerics-conventions.md), measured on the
installed frameworks rather than assumed: a framework upgrade that changes one of them fails here
first.

Each backend's own BN layer is probed by the bn-numerics suite's measurement code; the expected
values are that page's table, in the core convention (momentum = weight of the new statistic).
"""

from __future__ import annotations

import math

import pytest
from conftest import backend_instance

from harness.numerics import conventions as cv
from harness.numerics.cases import Case
from harness.numerics.reference import Convention
from harness.tasks.numerics import run_case

# backend: (native momentum weight, native epsilon, running var fed, batch-size-1 behaviour)
FACTS = {
    "torch": (0.1, 1e-5, "unbiased", "error"),
    "keras": (0.01, 1e-3, "biased", "silent"),
    "jax": (0.01, 1e-5, "biased", "silent"),
}
ILL = Case("mean/std 1e4", "ratio", 64, 32, ratio=1e4)


@pytest.fixture(scope="module", params=sorted(FACTS))
def measured(request: pytest.FixtureRequest) -> tuple[str, dict]:
    """(backend name, its measured conventions); skipped when the framework is absent."""
    backend = backend_instance(request.param)
    return request.param, cv.probe_conventions(backend)


def test_native_momentum_and_epsilon(measured: tuple[str, dict]) -> None:
    name, probes = measured
    weight, eps, _, _ = FACTS[name]
    assert probes["native"]["weight"] == pytest.approx(weight, rel=1e-3)
    assert probes["epsilon"]["native_eval"] == pytest.approx(eps, rel=1e-2)
    # ... and the translation makes every backend use the core's values when asked.
    assert probes["core"]["weight"] == pytest.approx(0.1, rel=1e-3)
    assert probes["epsilon"]["core_eval"] == pytest.approx(1e-5, rel=1e-2)


def test_running_variance_convention(measured: tuple[str, dict]) -> None:
    name, probes = measured
    assert probes["core"]["variance"]["fed"] == FACTS[name][2]


def test_batch_size_one(measured: tuple[str, dict]) -> None:
    name, probes = measured
    found = probes["batch1"]
    assert found["kind"] == FACTS[name][3], found
    if found["kind"] == "silent":
        assert "output = offset" in found["label"]


def test_flax_default_variance_formula_cancels_catastrophically() -> None:
    """Flax's default ``E[x^2]-E[x]^2`` loses the variance at mean/std 1e4; the adapter's
    two-pass choice (``use_fast_variance=False``) does not, which is why the adapter makes it."""
    backend = backend_instance("jax")
    native = run_case(
        backend,
        Case("native 1e4", "mode", 64, 32, ratio=1e4, native=True),
        Convention(momentum=0.01, epsilon=1e-5),
    )
    chosen = run_case(backend, ILL, Convention())
    assert native["errors"]["out"]["rel"] > 1e-1
    assert chosen["errors"]["out"]["rel"] < 1e-2
    assert math.isfinite(chosen["max_rel"])


def test_tensorflow_fused_op_feeds_the_unbiased_variance() -> None:
    """TensorFlow's fused BN op (``FusedBatchNormV3``, the ``fused`` variant of the keras
    backend on TensorFlow) feeds the unbiased variance to the running average, like PyTorch,
    while Keras's own layer feeds the biased one: measured, not assumed."""
    backend = backend_instance("keras")
    if "fused" not in backend.bn_variants():
        pytest.skip("keras is not running on TensorFlow")
    found = cv.probe_variants(backend, ["fused"])["fused"]
    assert found["weight"] == pytest.approx(0.1, rel=1e-3)
    assert found["variance"]["fed"] == "unbiased"
    assert found["variance"]["ratio_to_biased"] == pytest.approx(16 / 15, rel=1e-4)
