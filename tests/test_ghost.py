"""Ghost-batch BN and GroupNorm: the float64 references, the specs, the claims, the suite."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from fake_plugin import FakeBackend
from test_suites import cell, fake_suite

from harness import claims
from harness.backend import NormCall
from harness.numerics.ghost import (
    NormReferenceMLP,
    ghost_backward,
    ghost_forward,
    ghost_statistics,
    group_backward,
    group_forward,
    norm_reference,
)
from harness.numerics.reference import Convention, train_forward_backward
from harness.plugins import get_plugins
from harness.reference import bn_backward, bn_forward
from harness.specs import ModelSpec, TrainSpec

RNG = np.random.default_rng(3)
X = RNG.normal(0.5, 2.0, size=(16, 12))
UP = RNG.normal(size=(16, 12))
PARAMS = {
    "scale": RNG.uniform(0.5, 1.5, 12),
    "offset": RNG.normal(size=12),
    "mean": RNG.normal(size=12),
    "var": RNG.uniform(0.5, 2.0, 12),
}


def numeric_grad(f: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar ``f`` at ``x``."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def test_ghost_with_one_virtual_batch_is_batchnorm_with_the_unbiased_running_variance() -> None:
    got = norm_reference(X, PARAMS, UP, NormCall("ghost-batch", True, ghost_batch=16))
    want = train_forward_backward(X, PARAMS, UP, Convention(0.1, 1e-5, unbiased=True))
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", [2, 4, 8])
def test_each_virtual_batch_is_normalized_on_its_own(g: int) -> None:
    out, cache = ghost_forward(X, PARAMS["scale"], PARAMS["offset"], g, 1e-5)
    dx, dscale, doffset = ghost_backward(UP, cache)
    scale_sum, offset_sum = np.zeros(12), np.zeros(12)
    for j in range(0, 16, g):
        rows = slice(j, j + g)
        part, part_cache = bn_forward(X[rows], PARAMS["scale"], PARAMS["offset"], 1e-5)
        np.testing.assert_allclose(out[rows], part, rtol=1e-12)
        pdx, pds, pdo = bn_backward(UP[rows], part_cache)
        np.testing.assert_allclose(dx[rows], pdx, rtol=1e-10, atol=1e-12)
        scale_sum, offset_sum = scale_sum + pds, offset_sum + pdo
    np.testing.assert_allclose(dscale, scale_sum, rtol=1e-12)
    np.testing.assert_allclose(doffset, offset_sum, rtol=1e-12)


def test_ghost_running_statistics_rule() -> None:
    _, cache = ghost_forward(X, PARAMS["scale"], PARAMS["offset"], 4, 1e-5)
    mean, var = ghost_statistics(cache)
    parts = X.reshape(4, 4, 12)
    np.testing.assert_allclose(mean, parts.mean(1).mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, parts.var(1, ddof=1).mean(0), rtol=1e-12)
    got = norm_reference(X, PARAMS, UP, NormCall("ghost-batch", True, 4, momentum=0.25))
    np.testing.assert_allclose(got["running_var"], 0.75 * PARAMS["var"] + 0.25 * var)
    still = norm_reference(X, PARAMS, UP, NormCall("ghost-batch", False, 4))
    np.testing.assert_array_equal(still["running_mean"], PARAMS["mean"])
    inv = 1 / np.sqrt(PARAMS["var"] + 1e-5)
    want = (X - PARAMS["mean"]) * inv * PARAMS["scale"] + PARAMS["offset"]
    np.testing.assert_allclose(still["out"], want, rtol=1e-12)


def test_group_norm_normalizes_each_group_of_each_sample() -> None:
    out, _ = group_forward(X, np.ones(12), np.zeros(12), 3, 0.0)
    groups = out.reshape(16, 3, 4)
    np.testing.assert_allclose(groups.mean(2), 0, atol=1e-12)
    np.testing.assert_allclose(groups.var(2), 1, rtol=1e-10)
    other = X.copy()
    other[1:] *= 7.0  # other samples change: sample 0's output does not
    np.testing.assert_allclose(
        group_forward(other, np.ones(12), np.zeros(12), 3, 0.0)[0][0], out[0]
    )
    # One group is LayerNorm.
    ln, _ = bn_forward(X.T, np.ones(16), np.zeros(16), 1e-5)
    one = group_forward(X, PARAMS["scale"], PARAMS["offset"], 1, 1e-5)[0]
    np.testing.assert_allclose(one, ln.T * PARAMS["scale"] + PARAMS["offset"], rtol=1e-12)


@pytest.mark.parametrize("kind", ["ghost", "group"])
def test_gradients_match_finite_differences(kind: str) -> None:
    x, up = X[:8, :6], UP[:8, :6]
    scale, offset = PARAMS["scale"][:6], PARAMS["offset"][:6]
    fwd, bwd, arg = (
        (ghost_forward, ghost_backward, 4)
        if kind == "ghost"
        else (group_forward, group_backward, 2)
    )

    def loss(xv: np.ndarray, s: np.ndarray = scale, o: np.ndarray = offset) -> float:
        return float((fwd(xv, s, o, arg, 1e-3)[0] * up).sum())

    dx, dscale, doffset = bwd(up, fwd(x, scale, offset, arg, 1e-3)[1])
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        dscale, numeric_grad(lambda s: loss(x, s), scale), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        doffset, numeric_grad(lambda o: loss(x, scale, o), offset), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(
            input_size=6, hidden_sizes=(8, 4), num_classes=3, norm="groupnorm", norm_groups=2
        ),
        ModelSpec(
            input_size=6, hidden_sizes=(8, 4), num_classes=3, norm="batchnorm", ghost_batch=4
        ),
    ],
)
def test_reference_mlp_gradients_match_finite_differences(spec: ModelSpec) -> None:
    from harness.initializers import canonical_params

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)
    params = {k: v.astype(np.float64) for k, v in canonical_params(spec, 0).items()}
    _, _, grads = NormReferenceMLP(spec, params).loss_and_grads(x, y)
    for name in ("dense_0/kernel", "norm_0/scale", "norm_1/offset"):

        def loss(value: np.ndarray, name: str = name) -> float:
            mlp = NormReferenceMLP(spec, {**params, name: value})
            return NormReferenceMLP.loss_and_grads(mlp, x, y)[0]

        np.testing.assert_allclose(grads[name], numeric_grad(loss, params[name]), atol=1e-6)


def test_bad_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="ghost batch 5 must .* divide the batch of 16"):
        ghost_forward(X, PARAMS["scale"], PARAMS["offset"], 5, 1e-5)
    with pytest.raises(ValueError, match="5 groups must divide the 12 units"):
        group_forward(X, PARAMS["scale"], PARAMS["offset"], 5, 1e-5)


def test_specs_name_the_features_a_backend_must_offer() -> None:
    assert ModelSpec(norm="groupnorm").features == ("groupnorm",)
    assert ModelSpec(norm="batchnorm", ghost_batch=8).features == ("ghost-batch",)
    assert ModelSpec(norm="batchnorm").features == ModelSpec(ghost_batch=8).features == ()

    class Older(FakeBackend):  # a backend written before the features existed
        model_features = ()

    assert Older().unsupported(ModelSpec(norm="groupnorm")) == (
        "backend 'fake' does not implement groupnorm (its optional model features: none)"
    )
    assert Older().unsupported(ModelSpec(norm="batchnorm")) == ""
    assert FakeBackend().unsupported(ModelSpec(norm="groupnorm")) == ""
    with pytest.raises(NotImplementedError, match="has no norm_apply"):
        Older().norm_apply(X, PARAMS, NormCall("groupnorm", groups=3), UP)


def _drop_cells(bn: float, gn: float, ln: float) -> list[dict[str, Any]]:
    """Per seed and batch size 2 / 256: accuracy; each variant loses its ``drop`` at batch 2."""
    cells = []
    for seed in range(4):
        for bs in (2, 256):
            point, jitter = {"train.batch_size": bs}, seed / 500
            for variant, drop in (("bn", bn), ("groupnorm", gn), ("layernorm", ln)):
                acc = 0.95 - (drop + jitter if bs == 2 else 0.0)
                cells.append(cell(variant, seed, [acc], point=point))
    return cells


def test_groupnorm_claims() -> None:
    suite = fake_suite("b")
    (batch_dep,) = claims.bn_drop_vs_gn(_drop_cells(0.2, 0.02, 0.02), suite)
    assert batch_dep.verdict == claims.SUPPORTED
    assert batch_dep.numbers["bn drop"]["mean"] == pytest.approx(0.2 + 0.003)
    (independent,) = claims.gn_batch_independent(_drop_cells(0.2, 0.02, 0.02), suite)
    assert independent.verdict == claims.SUPPORTED  # GN adds nothing beyond LayerNorm's drop
    (falls,) = claims.gn_batch_independent(_drop_cells(0.2, 0.08, 0.02), suite)
    assert falls.verdict == claims.CONTRADICTED  # GN adds 6 pp > the 1 pp margin


def test_ghost_claim_tests_the_pre_declared_pick_against_both_extremes() -> None:
    cells = []
    for seed in range(3):
        for g, acc in ((2, 0.90), (8, 0.97), (32, 0.95), (256, 0.93)):
            point = {"model.ghost_batch": g, "train.batch_size": 256}
            cells.append(cell("ghost-bn", seed, [acc + seed / 1000], point=point))
    results = claims.ghost_intermediate(cells, fake_suite("g", ghost_pick=32))
    assert [r.claim for r in results] == [
        "Ghost batches of 32 beat the full batch (g=256)",
        "Ghost batches of 32 beat the smallest g (g=2)",
    ]
    assert all(r.verdict == claims.SUPPORTED for r in results)
    assert results[0].numbers["g=32"]["mean"] == pytest.approx(0.951)  # the pick, not g=8


def test_suites_sweep_groupnorm_and_ghost_batches() -> None:
    suites = get_plugins().suites
    ghost = suites.get("ghost-bn")
    assert ghost.sweep == {"model.ghost_batch": (2, 4, 8, 16, 32, 64, 128, 256)}
    assert (
        ghost.train.batch_size == 256
        and ghost.extra["ghost_pick"] in ghost.quick["model.ghost_batch"]
    )
    for name in ("batch-size", "batch-size-steps"):
        suite = suites.get(name)
        assert "groupnorm" in {v.name for v in suite.variants}
        assert {"bn_drop_vs_gn", "gn_batch_independent"} <= set(suite.extra["claims"])


def test_a_backend_without_the_features_skips_the_cells_with_the_reason() -> None:
    from harness.suite import RunOptions, expand
    from harness.worker import _run_cell

    class Older(FakeBackend):  # a backend written before the features existed
        model_features = ()

    ghost = get_plugins().suites.get("ghost-bn")
    cells = expand(ghost, RunOptions(backends=("fake",), quick=True), "run")
    results = [_run_cell(Older(), c.to_dict(), sys.stdout) for c in cells]
    assert {r["status"] for r in results} == {"skipped"}
    assert "backend 'fake' does not implement ghost-batch" in results[0]["reason"]


def test_a_reference_training_step_updates_running_statistics_by_the_rule() -> None:
    spec = ModelSpec(
        input_size=6, hidden_sizes=(8,), num_classes=3, norm="batchnorm", ghost_batch=2
    )
    from harness.initializers import canonical_params

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)
    mlp = NormReferenceMLP(spec, canonical_params(spec, 0))
    before = mlp.params["norm_0/var"].copy()
    mlp.step(x, y, TrainSpec(lr=0.1), 0.1)
    z = x @ canonical_params(spec, 0)["dense_0/kernel"].astype(np.float64)
    want = 0.9 * before + 0.1 * z.reshape(4, 2, 8).var(1, ddof=1).mean(0)
    np.testing.assert_allclose(mlp.params["norm_0/var"], want, rtol=1e-10)
