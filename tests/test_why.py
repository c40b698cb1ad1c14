"""The research suites' core pieces (harness.why): noise, masks, the core SGD, precise
statistics, the landscape measurements and the equivalence verdict, on float64 fakes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.backend import Backend
from harness.claims import CONTRADICTED, SUPPORTED, UNRESOLVED, ClaimResult, equivalent
from harness.initializers import canonical_params
from harness.reference import ReferenceMLP
from harness.specs import ModelSpec, TrainSpec
from harness.why.landscape import along_gradient
from harness.why.masks import trainable_mask, trained_count
from harness.why.noise import step_noise
from harness.why.sgd import CoreSGD, precise_statistics

SPEC = ModelSpec(input_size=12, hidden_sizes=(8, 6), num_classes=4, norm="batchnorm")


class ReferenceProbes(Backend):
    """The float64 reference as a backend offering only the probes (the rest is not needed)."""

    name = "reference-probes"

    @classmethod
    def devices(cls) -> list[str]:
        """CPU only."""
        return ["cpu"]

    def loss_and_grads(self, spec: Any, params: Any, x: Any, y: Any, noise: Any = None) -> Any:
        """Reference loss and gradients (no noise support: the tests pass none)."""
        assert noise is None
        loss, logits, grads = ReferenceMLP(spec, params).loss_and_grads(x, y)
        return loss, float(np.mean(logits.argmax(1) == y)), grads

    def batch_statistics(self, spec: Any, params: Any, x: Any) -> Any:
        """Reference batch mean and biased variance of each BN input."""
        _, caches = ReferenceMLP(spec, params).forward(x, training=True)
        out = {}
        for i, cache in enumerate(caches[:-1]):
            out[f"norm_{i}/mean"], out[f"norm_{i}/var"] = cache["bn"]["mean"], cache["bn"]["var"]
        return out

    versions = build = train = evaluate = logits = get_params = set_params = None  # type: ignore
    batchnorm = None  # type: ignore


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 12)).astype(np.float32), rng.integers(0, 4, n)


def test_noise_is_seeded_per_step_and_in_range() -> None:
    """The same (seed, step) gives the same arrays; another step other arrays; U ranges hold."""
    a, b = step_noise(SPEC, 2.0, 1, 5), step_noise(SPEC, 2.0, 1, 5)
    c = step_noise(SPEC, 2.0, 1, 6)
    assert a and b and c
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["norm_0/noise_shift"], c["norm_0/noise_shift"])
    assert np.all(np.abs(a["norm_1/noise_shift"]) <= 2.0)
    assert np.all((a["norm_0/noise_scale"] >= 1.0) & (a["norm_0/noise_scale"] <= 3.0))
    assert step_noise(SPEC, 0.0, 1, 5) is None
    assert step_noise(ModelSpec(norm="none"), 1.0, 1, 5) is None


def test_masks_train_the_same_number_of_scalars() -> None:
    """BN-only and the random-subset control train as many scalars; the control is seeded."""
    grads = ReferenceProbes().loss_and_grads(SPEC, canonical_params(SPEC, 0), *_data())[2]
    bn = trainable_mask(SPEC, grads, "bn-only", 0)
    rnd = trainable_mask(SPEC, grads, "random-subset", 0)
    assert trained_count(bn, grads) == trained_count(rnd, grads) == 2 * (8 + 6)
    assert all(rnd[k].sum() == 0 for k in rnd if k.startswith("norm_") or k.endswith("bias"))
    again = trainable_mask(SPEC, grads, "random-subset", 0)
    other = trainable_mask(SPEC, grads, "random-subset", 1)
    assert np.array_equal(rnd["dense_0/kernel"], again["dense_0/kernel"])
    assert not np.array_equal(rnd["dense_0/kernel"], other["dense_0/kernel"])
    assert trainable_mask(SPEC, grads, "all", 0) is None


def test_core_sgd_matches_the_reference_optimizer() -> None:
    """Three core SGD steps (momentum, torch semantics) equal the float64 reference's steps."""
    params = canonical_params(SPEC, 2)
    sgd = CoreSGD(ReferenceProbes(), SPEC, params, lr=0.1, momentum=0.9)
    ref = ReferenceMLP(SPEC, params)
    train = TrainSpec(optimizer="sgd", lr=0.1, momentum=0.9)
    for seed in range(3):
        x, y = _data(16, seed)
        sgd.commit(*sgd.proposal(sgd.grads(sgd.params, x, y, None)[2]))
        ref.step(x, y, train, 0.1)
    for key in ("dense_0/kernel", "norm_1/scale", "dense_2/bias"):
        np.testing.assert_allclose(sgd.params[key], ref.params[key], rtol=1e-4, atol=1e-6)


def test_masked_parameters_stay_frozen() -> None:
    """Under the BN-only mask the Dense weights never move and the BN scales do."""
    params = canonical_params(SPEC, 0)
    grads = ReferenceProbes().loss_and_grads(SPEC, params, *_data())[2]
    mask = trainable_mask(SPEC, grads, "bn-only", 0)
    sgd = CoreSGD(ReferenceProbes(), SPEC, params, lr=0.5, momentum=0.9, mask=mask)
    for seed in range(2):
        sgd.commit(*sgd.proposal(sgd.grads(sgd.params, *_data(16, seed), None)[2]))
    assert np.array_equal(sgd.params["dense_0/kernel"], params["dense_0/kernel"])
    assert not np.array_equal(sgd.params["norm_0/scale"], params["norm_0/scale"])


def test_precise_statistics_average_batches_with_unbiased_variance() -> None:
    """Two batches: the mean of batch means, the mean of B/(B−1) × biased batch variances."""
    params = canonical_params(SPEC, 0)
    x, _ = _data(32)
    got = precise_statistics(ReferenceProbes(), SPEC, params, x, 16, 10)
    halves = [ReferenceProbes().batch_statistics(SPEC, params, x[i : i + 16]) for i in (0, 16)]
    want_mean = (halves[0]["norm_1/mean"] + halves[1]["norm_1/mean"]) / 2
    want_var = (halves[0]["norm_1/var"] + halves[1]["norm_1/var"]) / 2 * 16 / 15
    np.testing.assert_allclose(got["norm_1/mean"], want_mean, rtol=1e-5)
    np.testing.assert_allclose(got["norm_1/var"], want_var, rtol=1e-5)


class Quadratic(ReferenceProbes):
    """L(θ) = a/2 ‖θ‖²: the gradient changes by exactly a·η‖g‖ over a step of η along it."""

    a = 3.0

    def loss_and_grads(self, spec: Any, params: Any, x: Any, y: Any, noise: Any = None) -> Any:
        """The quadratic's loss and gradient."""
        w = params["dense_0/kernel"].astype(np.float64)
        return 0.5 * self.a * float((w**2).sum()), 0.0, {"dense_0/kernel": self.a * w}


def test_beta_smoothness_of_a_quadratic_is_its_curvature() -> None:
    """Effective β-smoothness = a; the gradient change = a·η_max·‖g‖; loss variation exact."""
    w = np.full((2, 2), 0.5, np.float32)
    sgd = CoreSGD(Quadratic(), SPEC, {"dense_0/kernel": w}, lr=0.01, momentum=0.0)
    loss, _, grads = sgd.grads(sgd.params, None, None, None)
    out = along_gradient(sgd, (None, None), None, loss, grads)  # type: ignore[arg-type]
    assert out["beta_smoothness"] == pytest.approx(3.0, rel=1e-5)
    assert out["grad_change"] == pytest.approx(3.0 * 0.04 * out["grad_norm"], rel=1e-5)
    last = 0.5 * 3.0 * float(((w * (1 - 0.04 * 3.0)) ** 2).sum())
    assert out["loss_variation"] == pytest.approx(loss - last, rel=1e-5)


def _result(lo: float, hi: float) -> ClaimResult:
    return ClaimResult("c", "torch/cpu", "w", "m", UNRESOLVED, diff={"lo": lo, "hi": hi})


@pytest.mark.parametrize(
    ("lo", "hi", "verdict"),
    [(-0.005, 0.008, SUPPORTED), (0.02, 0.05, CONTRADICTED), (-0.005, 0.02, UNRESOLVED)],
)
def test_equivalence_verdict_from_the_interval(lo: float, hi: float, verdict: str) -> None:
    """Inside ±1 pp: supported; wholly outside: contradicted; straddling: unresolved."""
    assert equivalent([_result(lo, hi)], 0.01)[0].verdict == verdict


def test_float64_reference_with_noise_matches_finite_differences() -> None:
    """The numpy example backend's probes (the float64 reference with injected noise after BN)
    give the gradient that finite differences give, for both placements."""
    NumpyBackend = pytest.importorskip("harness_numpy_backend.backend").NumpyBackend

    from harness.initializers import canonical_params
    from harness.specs import ModelSpec

    rng = np.random.default_rng(1)
    for placement in ("before", "after"):
        spec = ModelSpec(
            input_size=6, hidden_sizes=(5, 4), num_classes=3, norm="batchnorm", placement=placement
        )
        params = {k: v.astype(np.float64) for k, v in canonical_params(spec, 0).items()}
        x, y = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)
        noise = {}
        for i, width in enumerate(spec.hidden_sizes):
            noise[f"norm_{i}/noise_scale"] = rng.uniform(1.0, 2.0, width)
            noise[f"norm_{i}/noise_shift"] = rng.uniform(-1.0, 1.0, width)
        backend = NumpyBackend()
        _, _, grads = backend.loss_and_grads(spec, params, x, y, noise)
        for name in ("dense_0/kernel", "norm_0/scale", "norm_1/offset"):
            h, flat = 1e-6, params[name].reshape(-1)
            up, down = dict(params), dict(params)
            up[name] = (flat + h * (np.arange(flat.size) == 0)).reshape(params[name].shape)
            down[name] = (flat - h * (np.arange(flat.size) == 0)).reshape(params[name].shape)
            numeric = (
                backend.loss_and_grads(spec, up, x, y, noise)[0]
                - backend.loss_and_grads(spec, down, x, y, noise)[0]
            ) / (2 * h)
            assert grads[name].reshape(-1)[0] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
        stats = backend.batch_statistics(spec, params, x)
        z0 = x @ params["dense_0/kernel"] + params["dense_0/bias"]
        z0 = np.maximum(z0, 0) if placement == "after" else z0
        assert stats["norm_0/mean"] == pytest.approx(z0.mean(0))
        assert stats["norm_0/var"] == pytest.approx(z0.var(0))
