"""Property-based tests of the float64 BatchNorm reference (harness.numerics.reference)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.numerics.cases import quantize
from harness.numerics.reference import (
    Convention,
    batch_variance,
    eval_forward_backward,
    reference,
    running_stats,
    train_forward_backward,
)

seeds = st.integers(0, 2**32 - 1)
batches = st.integers(3, 48)
widths = st.integers(1, 6)
means = st.floats(-100.0, 100.0)
stds = st.floats(0.05, 20.0)


def layer(seed: int, n: int, d: int, mean: float = 0.0, std: float = 1.0) -> tuple:
    """Seeded inputs, parameters and upstream gradient of one layer."""
    rng = np.random.default_rng(seed)
    x = mean + std * rng.standard_normal((n, d))
    params = {
        "scale": rng.uniform(0.5, 1.5, d),
        "offset": rng.normal(0.0, 1.0, d),
        "mean": rng.normal(0.0, 1.0, d),
        "var": rng.uniform(0.5, 2.0, d),
    }
    return x, params, rng.standard_normal((n, d))


@settings(max_examples=60, deadline=None)
@given(seeds, batches, widths, means, stds)
def test_normalized_output_has_mean_zero_and_variance_one(
    seed: int, n: int, d: int, mean: float, std: float
) -> None:
    x, params, g = layer(seed, n, d, mean, std)
    unit = {**params, "scale": np.ones(d), "offset": np.zeros(d)}
    var = batch_variance(x, False)
    eps = 1e-12 * float(var.min())  # small relative to the variance
    out = train_forward_backward(x, unit, g, Convention(epsilon=eps))["out"]
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(out.var(0), 1.0, rtol=1e-9)


def _numeric_grads(x: np.ndarray, params: dict, g: np.ndarray, training: bool) -> list:
    conv, h = Convention(epsilon=1e-3), 1e-6

    def loss(xv: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> float:
        p = {**params, "scale": scale, "offset": offset}
        return float((reference(xv, p, g, training, conv)["out"] * g).sum())

    args = [x, params["scale"], params["offset"]]
    grads = []
    for i, arg in enumerate(args):
        grad = np.zeros_like(arg)
        for idx in np.ndindex(arg.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[i][idx] += h
            minus[i][idx] -= h
            grad[idx] = (loss(*plus) - loss(*minus)) / (2 * h)
        grads.append(grad)
    return grads


@settings(max_examples=25, deadline=None)
@given(seeds, st.integers(3, 10), st.integers(1, 3), st.booleans())
def test_gradients_match_finite_differences(seed: int, n: int, d: int, training: bool) -> None:
    x, params, g = layer(seed, n, d)
    ref = reference(x, params, g, training, Convention(epsilon=1e-3))
    numeric = _numeric_grads(x, params, g, training)
    for name, fd in zip(("grad_x", "grad_scale", "grad_offset"), numeric):
        scale = max(1.0, float(np.abs(fd).max()))
        np.testing.assert_allclose(ref[name], fd, atol=1e-6 * scale, err_msg=name)


@settings(max_examples=60, deadline=None)
@given(seeds, batches, widths, means, stds, st.floats(1e-8, 1e-1))
def test_eval_with_batch_statistics_equals_training_mode(
    seed: int, n: int, d: int, mean: float, std: float, eps: float
) -> None:
    x, params, g = layer(seed, n, d, mean, std)
    conv = Convention(epsilon=eps)
    batch = {**params, "mean": x.mean(0), "var": batch_variance(x, False)}
    train = train_forward_backward(x, params, g, conv)
    evaluated = eval_forward_backward(x, batch, g, conv)
    np.testing.assert_allclose(evaluated["out"], train["out"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(evaluated["grad_scale"], train["grad_scale"], atol=1e-7 * n)
    np.testing.assert_allclose(evaluated["grad_offset"], train["grad_offset"])


@given(seeds, batches, widths, st.floats(0.0, 1.0))
def test_running_update_in_both_conventions(seed: int, n: int, d: int, m: float) -> None:
    x, params, _ = layer(seed, n, d)
    biased = running_stats(x, params, Convention(momentum=m))
    unbiased = running_stats(x, params, Convention(momentum=m, unbiased=True))
    np.testing.assert_allclose(biased[0], (1 - m) * params["mean"] + m * x.mean(0))
    np.testing.assert_allclose(biased[1], (1 - m) * params["var"] + m * x.var(0))
    np.testing.assert_allclose(unbiased[1], (1 - m) * params["var"] + m * x.var(0, ddof=1))
    np.testing.assert_array_equal(unbiased[0], biased[0])


def test_single_sample_unbiased_variance_is_undefined() -> None:
    x = np.ones((1, 3))
    assert np.all(np.isnan(batch_variance(x, True)))
    np.testing.assert_array_equal(batch_variance(x, False), 0.0)
    params = layer(0, 1, 3)[1]
    out = train_forward_backward(x, params, np.ones((1, 3)), Convention())
    np.testing.assert_allclose(out["out"][0], params["offset"])  # output = offset
    np.testing.assert_array_equal(out["grad_x"], 0.0)


normal32 = st.floats(-1e4, 1e4, width=32).filter(lambda v: v == 0 or abs(v) > 1e-30)


@given(st.lists(normal32, min_size=1, max_size=50))
def test_quantize_rounds_to_nearest_representable(values: list[float]) -> None:
    x = np.asarray(values, np.float32)
    np.testing.assert_array_equal(quantize(x, "float16"), x.astype(np.float16).astype(np.float32))
    bf = quantize(x, "bfloat16")
    assert not np.any(bf.view(np.uint32) & 0xFFFF)  # representable in bfloat16
    np.testing.assert_array_equal(quantize(bf, "bfloat16"), bf)  # idempotent
    assert np.all(
        np.abs(bf - x) <= 2.0**-8 * np.abs(x)
    )  # within half a bfloat16 ulp (normal numbers)


def test_bfloat16_rounding_matches_ml_dtypes() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.random.default_rng(0).normal(0, 100, 10_000).astype(np.float32)
    expected = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(quantize(x, "bfloat16"), expected)
