"""The backend contract, checked on every registered backend against a float64 reference.

A new backend (a third-party plugin included) inherits these tests by registering. Tolerances
are for float32 arithmetic on well-conditioned inputs (FACTS.md: <= 1e-5 max-norm relative for
one layer; a few steps of training compound it, hence 1e-4 after k steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.backend import Backend, EpochMetrics, TrainData
from harness.initializers import batch_order, canonical_params, param_count
from harness.reference import ReferenceMLP
from harness.specs import ModelSpec, TrainSpec

LOGIT_TOL = 2e-5  # max |a - b| / max |b| for the forward pass
TRAIN_TOL = 1e-4  # losses and parameters after K steps
K_STEPS = 5
SPECS = {
    "bn": ModelSpec(input_size=48, hidden_sizes=(32, 24), num_classes=10, norm="batchnorm"),
    "nobn": ModelSpec(input_size=48, hidden_sizes=(32, 24), num_classes=10, norm="none"),
    "bn-after-tanh": ModelSpec(
        input_size=48,
        hidden_sizes=(32, 24),
        num_classes=10,
        norm="batchnorm",
        placement="after",
        activation="tanh",
    ),
    "ln": ModelSpec(input_size=48, hidden_sizes=(32, 24), num_classes=10, norm="layernorm"),
}
OPTIMIZERS = {
    "sgd-momentum": TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9),
    "sgd-nesterov-wd": TrainSpec(
        optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "adam": TrainSpec(optimizer="adam", lr=1e-3),
}


def relerr(a: np.ndarray, b: np.ndarray, floor: float = 1e-12) -> float:
    """Max-norm relative error of ``a`` against reference ``b`` (denominator at least floor).

    A floor matters for quantities that stay near zero, e.g. the bias of a Dense layer followed
    by BN, whose gradient is zero up to rounding.
    """
    scale = max(float(np.max(np.abs(b))), floor)
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / scale)


def make_data(n: int = 256, features: int = 48, seed: int = 0) -> TrainData:
    """Well-conditioned synthetic data: standard normal features, labels from a linear map."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x @ rng.normal(size=(features, 10))).argmax(1).astype(np.int64)
    return TrainData(x[:192], y[:192], x[192:], y[192:])


@pytest.mark.parametrize("spec_name", list(SPECS))
def test_params_round_trip_is_exact(backend: Backend, spec_name: str) -> None:
    spec = SPECS[spec_name]
    params = canonical_params(spec, 3)
    model = backend.build(spec, params, 3)
    got = backend.get_params(model)
    assert sorted(got) == sorted(params)
    assert param_count(got) == param_count(params)
    for name, value in params.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    other = canonical_params(spec, 4)
    backend.set_params(model, other)
    for name, value in backend.get_params(model).items():
        np.testing.assert_array_equal(value, other[name], err_msg=name)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_logits_match_reference(backend: Backend, spec_name: str, training: bool) -> None:
    spec = SPECS[spec_name]
    params = canonical_params(spec, 1)
    if spec.norm == "batchnorm":  # non-trivial running stats so eval mode is tested for real
        rng = np.random.default_rng(5)
        for i, width in enumerate(spec.hidden_sizes):
            params[f"norm_{i}/mean"] = rng.normal(size=width).astype(np.float32)
            params[f"norm_{i}/var"] = rng.uniform(0.5, 2, size=width).astype(np.float32)
    model = backend.build(spec, params, 1)
    x = make_data().x_train[:64]
    want, _ = ReferenceMLP(spec, params).forward(x, training=training)
    assert relerr(backend.logits(model, x, training=training), want) < LOGIT_TOL
    # Normalizing with batch statistics must not touch the running statistics.
    for name, value in backend.get_params(model).items():
        np.testing.assert_array_equal(value, params[name], err_msg=name)


@pytest.mark.parametrize("spec_name", list(SPECS))
def test_pre_activations_match_reference(backend: Backend, spec_name: str) -> None:
    """The optional probe of the ioffe2015 suite: eval-mode input of an activation function."""
    spec = SPECS[spec_name]
    params = canonical_params(spec, 1)
    model = backend.build(spec, params, 1)
    x = make_data().x_train[:64]
    _, caches = ReferenceMLP(spec, params).forward(x, training=False)
    for layer in range(len(spec.hidden_sizes)):
        try:
            got = backend.pre_activations(model, x, layer)
        except NotImplementedError:
            pytest.skip(f"backend '{backend.name}' does not offer pre_activations (optional)")
        assert got.shape == caches[layer]["z"].shape
        assert relerr(got, caches[layer]["z"]) < LOGIT_TOL, layer


def _train_k_steps(backend: Backend, spec: ModelSpec, train: TrainSpec) -> tuple[Any, ...]:
    data = make_data()
    params = canonical_params(spec, 2)
    model = backend.build(spec, params, 2)
    order = batch_order(len(data.y_train), 32, 1, seed=2)[:, :K_STEPS]
    history = backend.train(model, data, train, order)
    ref = ReferenceMLP(spec, params, unbiased_running_var=False)
    ref_unbiased = ReferenceMLP(spec, params, unbiased_running_var=True)
    losses = []
    for idx in order[0]:
        losses.append(ref.step(data.x_train[idx], data.y_train[idx], train, train.lr))
        ref_unbiased.step(data.x_train[idx], data.y_train[idx], train, train.lr)
    return history, backend.get_params(model), np.array(losses), ref, ref_unbiased


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("spec_name", ["bn", "nobn", "ln"])
def test_k_steps_match_reference(backend: Backend, spec_name: str, opt_name: str) -> None:
    history, got, losses, ref, ref_unbiased = _train_k_steps(
        backend, SPECS[spec_name], OPTIMIZERS[opt_name]
    )
    assert len(history) == 1 and isinstance(history[0], EpochMetrics)
    step_losses = history[0].step_losses
    assert step_losses is not None and step_losses.shape == (K_STEPS,)
    assert relerr(step_losses, losses) < TRAIN_TOL
    assert abs(history[0].train_loss - losses.mean()) < TRAIN_TOL * losses.mean()
    spec, train = SPECS[spec_name], OPTIMIZERS[opt_name]
    for name, value in got.items():
        if train.optimizer == "adam":
            _check_adam_param(spec, train, name, value, ref.params)
            continue
        if name.endswith("/var"):  # biased (Keras, Flax) or unbiased (PyTorch): either is a rule
            err = min(
                relerr(value, ref.params[name], 1e-2),
                relerr(value, ref_unbiased.params[name], 1e-2),
            )
        else:
            err = relerr(value, ref.params[name], 1e-2)
        assert err < TRAIN_TOL, (name, err)


def _check_adam_param(
    spec: ModelSpec, train: TrainSpec, name: str, value: np.ndarray, ref: dict[str, np.ndarray]
) -> None:
    """Adam moves each element by about ``lr`` whatever the gradient's size, so elements whose
    gradient is rounding noise move in noise-chosen directions. Compare on the scale of the
    largest possible move (K * lr), and skip biases right before BN: their exact gradient is 0.
    """
    layer = int(name.split("/")[0].split("_")[1])
    if (
        name.endswith("/bias")
        and spec.norm == "batchnorm"
        and spec.placement == "before"
        and layer < len(spec.hidden_sizes)
    ):
        return
    if name.endswith(("/mean", "/var")):
        return  # running statistics follow from the trainable ones checked here
    moved = float(np.max(np.abs(np.asarray(value, np.float64) - ref[name])))
    assert moved < 0.02 * K_STEPS * train.lr, (name, moved)


def test_epoch_metrics_are_consistent(backend: Backend) -> None:
    spec, data = SPECS["bn"], make_data()
    model = backend.build(spec, canonical_params(spec, 0), 0)
    order = batch_order(len(data.y_train), 32, 2, seed=0)
    seen: list[int] = []
    history = backend.train(
        model, data, TrainSpec(lr=0.05), order, lambda m: seen.append(m.epoch) is None
    )
    assert [m.epoch for m in history] == seen == [1, 2]
    for m in history:
        assert 0 <= m.train_acc <= 1 and 0 <= m.val_acc <= 1 and m.time_s > 0
    loss, acc = backend.evaluate(model, data.x_val, data.y_val)
    assert (loss, acc) == pytest.approx((history[-1].val_loss, history[-1].val_acc), rel=1e-5)


def test_callback_false_stops_training(backend: Backend) -> None:
    spec, data = SPECS["nobn"], make_data()
    model = backend.build(spec, canonical_params(spec, 0), 0)
    order = batch_order(len(data.y_train), 32, 3, seed=0)
    assert len(backend.train(model, data, TrainSpec(), order, lambda m: False)) == 1


def test_same_seed_same_result(backend: Backend) -> None:
    spec, data = SPECS["bn"], make_data()
    runs = []
    for _ in range(2):
        model = backend.build(spec, canonical_params(spec, 9), 9)
        history = backend.train(model, data, TrainSpec(), batch_order(192, 32, 2, 9))
        runs.append(([m.train_loss for m in history], backend.get_params(model)))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])


@pytest.mark.parametrize("spec_name", ["bn", "nobn"])
def test_native_init_builds_and_trains(backend: Backend, spec_name: str) -> None:
    spec, data = SPECS[spec_name], make_data()
    model = backend.build(spec, None, 0)
    params = backend.get_params(model)
    assert param_count(params) == param_count(canonical_params(spec, 0))
    assert any(np.any(v != canonical_params(spec, 0)[k]) for k, v in params.items())
    history = backend.train(model, data, TrainSpec(), batch_order(192, 32, 1, 0))
    assert np.isfinite(history[0].train_loss)
