"""The backend contract's conformance checks, run inside one backend's worker process.

Every check drives a :class:`harness.backend.Backend` through its public methods on small
synthetic data and compares with the float64 NumPy reference (:mod:`harness.reference`,
:mod:`harness.numerics.reference`). Tolerances are for float32 arithmetic on well-conditioned
inputs (<= 1e-5 max-norm relative for one layer; a few steps of training compound it, hence
1e-4 after k steps of SGD; Adam's limit is derived per element, :func:`adam_limit`). A check
of an optional method that raises ``NotImplementedError`` is reported as ``not implemented``,
never as a failure. :mod:`harness.check` runs these checks in a worker (``harness check
BACKEND``, and the pytest conformance tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.backend import Backend, BNCall, EpochMetrics, NormCall, TrainData
from harness.initializers import batch_order, canonical_params, param_count
from harness.numerics.difftest import UNIT_ROUNDOFF, reduction_lengths, tolerance
from harness.numerics.ghost import NormReferenceMLP, norm_reference
from harness.numerics.reference import Convention, reference
from harness.reference import ReferenceMLP
from harness.specs import CellSpec, ModelSpec, TrainSpec

LOGIT_TOL = 2e-5  # max |a - b| / max |b| for the forward pass
TRAIN_TOL = 1e-4  # losses and parameters after K steps, and one BN layer's outputs
K_STEPS = 5
K_BATCH = 32
PASS, FAIL, NOT_IMPLEMENTED = "pass", "fail", "not implemented"
_SMALL = {"input_size": 48, "hidden_sizes": (32, 24), "num_classes": 10}
SPECS = {
    "bn": ModelSpec(**_SMALL, norm="batchnorm"),  # type: ignore[arg-type]
    "nobn": ModelSpec(**_SMALL, norm="none"),  # type: ignore[arg-type]
    "bn-after-tanh": ModelSpec(
        **_SMALL,  # type: ignore[arg-type]
        norm="batchnorm",
        placement="after",
        activation="tanh",
    ),
    "ln": ModelSpec(**_SMALL, norm="layernorm"),  # type: ignore[arg-type]
}
OPTIMIZERS = {
    "sgd-momentum": TrainSpec(optimizer="sgd", lr=0.05, momentum=0.9),
    "sgd-nesterov-wd": TrainSpec(
        optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "adam": TrainSpec(optimizer="adam", lr=1e-3),
}
CheckFn = Callable[[Backend], None]


class NotOffered(Exception):
    """An optional method the backend does not implement."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``pass``, ``fail`` or ``not implemented``, with a one-line detail."""

    name: str
    status: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready dict."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


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


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    _require(sorted(got) == sorted(want), f"parameter names {sorted(got)} != {sorted(want)}")
    for name, value in want.items():
        _require(got[name].shape == value.shape, f"{name}: shape {got[name].shape}")
        _require(bool(np.array_equal(got[name], value)), f"{name}: values differ")


def params_round_trip(spec: ModelSpec) -> CheckFn:
    """build() with canonical params, get_params() returns them exactly; set_params() too."""

    def check(backend: Backend) -> None:
        params = canonical_params(spec, 3)
        model = backend.build(spec, params, 3)
        _same(backend.get_params(model), params)
        other = canonical_params(spec, 4)
        backend.set_params(model, other)
        _same(backend.get_params(model), other)

    return check


def logits_match(spec: ModelSpec, training: bool) -> CheckFn:
    """logits() in eval or train mode match the reference; batch statistics update nothing."""

    def check(backend: Backend) -> None:
        params = canonical_params(spec, 1)
        if spec.norm == "batchnorm":  # non-trivial running stats: eval mode tested for real
            rng = np.random.default_rng(5)
            for i, width in enumerate(spec.hidden_sizes):
                params[f"norm_{i}/mean"] = rng.normal(size=width).astype(np.float32)
                params[f"norm_{i}/var"] = rng.uniform(0.5, 2, size=width).astype(np.float32)
        model = backend.build(spec, params, 1)
        x = make_data().x_train[:64]
        want, _ = NormReferenceMLP(spec, params).forward(x, training=training)
        err = relerr(backend.logits(model, x, training=training), want)
        _require(err < LOGIT_TOL, f"logits max rel error {err:.2e} >= {LOGIT_TOL:g}")
        _same(backend.get_params(model), params)

    return check


def pre_activations_match(spec: ModelSpec) -> CheckFn:
    """The optional probe of the ioffe2015 suite: eval-mode input of each activation."""

    def check(backend: Backend) -> None:
        params = canonical_params(spec, 1)
        model = backend.build(spec, params, 1)
        x = make_data().x_train[:64]
        _, caches = ReferenceMLP(spec, params).forward(x, training=False)
        for layer in range(len(spec.hidden_sizes)):
            got = backend.pre_activations(model, x, layer)
            want = caches[layer]["z"]
            _require(got.shape == want.shape, f"layer {layer}: shape {got.shape}")
            err = relerr(got, want)
            _require(err < LOGIT_TOL, f"layer {layer}: max rel error {err:.2e}")

    return check


def k_steps_match(spec: ModelSpec, train: TrainSpec) -> CheckFn:
    """K training steps: step losses and parameters match the reference (torch.optim rules)."""

    def check(backend: Backend) -> None:
        data, params = make_data(), canonical_params(spec, 2)
        model = backend.build(spec, params, 2)
        order = batch_order(len(data.y_train), K_BATCH, 1, seed=2)[:, :K_STEPS]
        history = backend.train(model, data, train, order)
        refs: list[ReferenceMLP] = [
            NormReferenceMLP(spec, params, unbiased_running_var=u) for u in (False, True)
        ]
        moments: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
        losses = np.array([_ref_step(refs, data, idx, train, moments) for idx in order[0]])
        _require(len(history) == 1 and isinstance(history[0], EpochMetrics), "one epoch")
        steps = history[0].step_losses
        _require(steps is not None and steps.shape == (K_STEPS,), "step_losses shape")
        err = relerr(steps, losses)  # type: ignore[arg-type]
        _require(err < TRAIN_TOL, f"step losses max rel error {err:.2e}")
        _require(abs(history[0].train_loss - losses.mean()) < TRAIN_TOL * losses.mean(), "mean")
        for name, value in backend.get_params(model).items():
            _param_close(spec, train, name, value, refs, moments)

    return check


def _ref_step(
    refs: list[ReferenceMLP],
    data: TrainData,
    idx: np.ndarray,
    train: TrainSpec,
    moments: list[dict[str, tuple[np.ndarray, np.ndarray]]],
) -> Any:
    """One reference step; for Adam, records each parameter's gradient and bias-corrected
    second moment ``v_hat`` of that step (the gradient recovered from the first moment)."""
    previous = {k: v.copy() for k, v in refs[0].state.items() if k.endswith("/m")}
    loss = [r.step(data.x_train[idx], data.y_train[idx], train, train.lr) for r in refs][0]
    if train.optimizer == "adam":
        t, state, b1 = refs[0].state["t"], refs[0].state, train.adam_beta1
        moments.append(
            {
                name[:-2]: (
                    (m - b1 * previous.get(name, 0.0)) / (1 - b1),
                    state[name[:-2] + "/v"] / (1 - train.adam_beta2**t),
                )
                for name, m in state.items()
                if name.endswith("/m")
            }
        )
    return loss


def adam_limit(
    spec: ModelSpec,
    train: TrainSpec,
    name: str,
    steps: list[tuple[np.ndarray, np.ndarray]],
    param: np.ndarray,
) -> np.ndarray:
    """Per element, how far K float32 Adam steps may move from the float64 ones.

    Adam divides the first moment by the root of the second, so an element's update error is
    its gradient's error relative to ``sqrt(v_hat)``, not to the update: for step ``t``,
    ``|d update| <= lr * A_t * dg_t / (sqrt(v_hat_t) + eps)`` with ``A_t = 2 (1-b1)/(1-b1^t)``
    (one term from the first moment, one of the same size from the second, whose relative
    error is twice the gradient's, halved by the root). ``dg_t = tol * max|g_t|`` is the
    float32 error of the gradient under the max-norm, ``tol = u * n_eff`` the differential
    test's formula (:func:`harness.numerics.difftest.tolerance`, ``n_eff`` this gradient's
    reduction length through the step, ``kappa = 1``). An update never errs by more than
    flipping its sign: each step's term is capped at 2 (``|m_hat / sqrt(v_hat)| <= ~1`` for
    the first steps when ``b1^2 < b2``), and the limit is the sum over the K steps (first
    order: K is small and the parameters' own drift feeds back only at second order), plus
    one rounding of the float32 parameter per step, ``K u |param|``.
    """
    layer = name.split("/")[0]
    leaf = {"kernel": "grad_kernel", "bias": "grad_bias", "scale": "grad_scale"}.get(
        name.split("/")[1], "grad_offset"
    )
    lengths = reduction_lengths(spec, K_BATCH)
    n_eff = lengths.get(f"{layer}/{leaf}", max(lengths.values()))
    b1, total = train.adam_beta1, np.zeros_like(steps[0][0])
    for t, (grad, v_hat) in enumerate(steps, start=1):
        dg = tolerance(n_eff, 1.0) * float(np.max(np.abs(grad)))
        root = np.sqrt(v_hat) + train.adam_epsilon
        term = 2 * (1 - b1) / (1 - b1**t) * dg / root
        total = total + np.minimum(term, 2.0)
    return train.lr * total + len(steps) * UNIT_ROUNDOFF * np.abs(param)


def _param_close(
    spec: ModelSpec,
    train: TrainSpec,
    name: str,
    value: np.ndarray,
    refs: list[ReferenceMLP],
    moments: list[dict[str, tuple[np.ndarray, np.ndarray]]],
) -> None:
    """Adam moves each element by about ``lr`` whatever the gradient's size, so each element is
    held to its own derived limit (:func:`adam_limit`), skipping biases right before BN
    (gradient 0) and running statistics; a running variance may follow either variance rule."""
    if train.optimizer == "adam":
        layer = int(name.split("/")[0].split("_")[1])
        before_bn = spec.norm == "batchnorm" and spec.placement == "before"
        if name.endswith(("/mean", "/var")) or (
            name.endswith("/bias") and before_bn and layer < len(spec.hidden_sizes)
        ):
            return
        moved = np.abs(np.asarray(value, np.float64) - refs[0].params[name])
        limit = adam_limit(spec, train, name, [m[name] for m in moments], refs[0].params[name])
        worst = int(np.argmax(moved / limit))
        _require(
            moved.flat[worst] <= limit.flat[worst],
            f"{name}: moved {moved.flat[worst]:.2e} from reference, limit "
            f"{limit.flat[worst]:.2e} (derived, adam_limit)",
        )
        return
    candidates = refs if name.endswith("/var") else refs[:1]
    err = min(relerr(value, r.params[name], 1e-2) for r in candidates)
    _require(err < TRAIN_TOL, f"{name}: max rel error {err:.2e}")


def epoch_metrics(backend: Backend) -> None:
    """train() reports every epoch to the callback; metrics in range; evaluate() agrees."""
    spec, data = SPECS["bn"], make_data()
    model = backend.build(spec, canonical_params(spec, 0), 0)
    seen: list[int] = []

    def record(metrics: EpochMetrics) -> bool:
        seen.append(metrics.epoch)
        return True

    history = backend.train(
        model,
        data,
        TrainSpec(lr=0.05),
        batch_order(192, 32, 2, 0),
        record,
    )
    _require([m.epoch for m in history] == seen == [1, 2], f"epochs {seen}")
    for m in history:
        _require(0 <= m.train_acc <= 1 and 0 <= m.val_acc <= 1 and m.time_s > 0, str(m))
        _require(all(map(math.isfinite, (m.train_loss, m.val_loss))), "finite losses")
    loss, acc = backend.evaluate(model, data.x_val, data.y_val)
    last = history[-1]
    close = math.isclose(loss, last.val_loss, rel_tol=1e-5) and math.isclose(acc, last.val_acc)
    _require(close, f"evaluate() {loss, acc} != last epoch {last.val_loss, last.val_acc}")
    train_mode = backend.evaluate(model, data.x_val, data.y_val, training=True)
    _require(all(map(math.isfinite, train_mode)), "train-mode evaluate() not finite")


def callback_stops(backend: Backend) -> None:
    """An epoch callback returning False stops training after that epoch."""
    spec, data = SPECS["nobn"], make_data()
    model = backend.build(spec, canonical_params(spec, 0), 0)
    got = backend.train(model, data, TrainSpec(), batch_order(192, 32, 3, 0), lambda m: False)
    _require(len(got) == 1, f"{len(got)} epochs after the callback said stop")


def same_seed(backend: Backend) -> None:
    """Two runs from the same weights and batch order give bit-identical results."""
    spec, data = SPECS["bn"], make_data()
    runs = []
    for _ in range(2):
        model = backend.build(spec, canonical_params(spec, 9), 9)
        history = backend.train(model, data, TrainSpec(), batch_order(192, 32, 2, 9))
        runs.append(([m.train_loss for m in history], backend.get_params(model)))
    _require(runs[0][0] == runs[1][0], f"losses differ: {runs[0][0]} vs {runs[1][0]}")
    _same(runs[1][1], runs[0][1])


def native_init(spec: ModelSpec) -> CheckFn:
    """build() without params: the framework's own init, the same parameter count, trains."""

    def check(backend: Backend) -> None:
        data, canonical = make_data(), canonical_params(spec, 0)
        model = backend.build(spec, None, 0)
        params = backend.get_params(model)
        _require(param_count(params) == param_count(canonical), "parameter count")
        _require(any(np.any(v != canonical[k]) for k, v in params.items()), "canonical weights")
        history = backend.train(model, data, TrainSpec(), batch_order(192, 32, 1, 0))
        _require(math.isfinite(history[0].train_loss), "loss not finite")

    return check


def layer_inputs(
    seed: int, loc: float, width: int, batch: int = 32
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Seeded float32 input, upstream gradient and scale/offset/mean/var for one norm layer."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc, 2.0, size=(batch, width)).astype(np.float32)
    upstream = rng.normal(size=(batch, width)).astype(np.float32)
    params = {
        "scale": rng.uniform(0.5, 1.5, width).astype(np.float32),
        "offset": rng.normal(size=width).astype(np.float32),
        "mean": rng.normal(size=width).astype(np.float32),
        "var": rng.uniform(0.5, 2.0, width).astype(np.float32),
    }
    return x, upstream, params


def batchnorm_match(training: bool) -> CheckFn:
    """batchnorm(): the framework's BN layer once, against the float64 reference layer."""

    def check(backend: Backend) -> None:
        x, upstream, params = layer_inputs(seed=7, loc=1.0, width=16)
        got = backend.batchnorm(x, params, BNCall(training=training), upstream)
        _require(not got.error, f"error: {got.error}")
        refs = [
            reference(x, params, upstream, training, Convention(unbiased=u))
            for u in (False, True)
        ]
        for key in ("out", "grad_x", "grad_scale", "grad_offset", "running_mean", "running_var"):
            value = getattr(got, key)
            if value is None and key.startswith("grad") and not training:
                continue  # eval-mode gradients are optional
            err = min(relerr(value, ref[key], 1e-6) for ref in refs)
            _require(err < TRAIN_TOL, f"{key}: max rel error {err:.2e}")

    return check


def stepper_runs(backend: Backend) -> None:
    """The optional stepper (benchmarks): runs the compiled step over an index array."""
    spec, data = SPECS["bn"], make_data()
    model = backend.build(spec, canonical_params(spec, 0), 0)
    run = backend.stepper(model, data, TrainSpec())
    run(batch_order(192, 32, 1, 0)[0])


def matmul_rates_positive(backend: Backend) -> None:
    """The optional matmul_rates (timing roofline): one finite positive rate per repeat."""
    rates = backend.matmul_rates([(32, 48, 32), (32, 32, 10)], repeats=2)
    _require(len(rates) == 2, f"{len(rates)} rates for 2 repeats")
    _require(all(math.isfinite(r) and r > 0 for r in rates), f"rates {rates}")


def versions_reported(backend: Backend) -> None:
    """versions() is a non-empty mapping of strings (recorded with every run)."""
    info = backend.versions()
    _require(bool(info), "empty")
    _require(all(isinstance(k, str) and isinstance(v, str) for k, v in info.items()), "types")


FEATURE_SPECS = {
    "gn": ModelSpec(**_SMALL, norm="groupnorm", norm_groups=4),  # type: ignore[arg-type]
    "ghost": ModelSpec(**_SMALL, norm="batchnorm", ghost_batch=8),  # type: ignore[arg-type]
}
"""Specs of the optional model features (GroupNorm, ghost-batch BN), checked when offered."""
NORM_CALLS = {
    "ghost-2-train": NormCall("ghost-batch", True, ghost_batch=2),
    "ghost-8-train": NormCall("ghost-batch", True, ghost_batch=8),
    "ghost-8-eval": NormCall("ghost-batch", False, ghost_batch=8),
    "groupnorm-4": NormCall("groupnorm", True, groups=4),
}


def offered(spec: ModelSpec, check: CheckFn) -> CheckFn:
    """``check``, or ``NotImplementedError`` when the backend lacks a feature ``spec`` needs."""

    def gated(backend: Backend) -> None:
        reason = backend.unsupported(spec)
        if reason:
            raise NotImplementedError(reason)
        check(backend)

    return gated


def norm_apply_match(call: NormCall) -> CheckFn:
    """norm_apply(): the MLP's ghost-batch BN or GroupNorm layer once, against float64."""
    features = {"ghost-batch": FEATURE_SPECS["ghost"], "groupnorm": FEATURE_SPECS["gn"]}

    def check(backend: Backend) -> None:
        x, upstream, params = layer_inputs(seed=11, loc=0.5, width=32)
        got = backend.norm_apply(x, params, call, upstream)
        _require(not got.error, f"error: {got.error}")
        want = norm_reference(x, params, upstream, call)
        for key, ref in want.items():
            value = np.asarray(getattr(got, key))
            _require(value.shape == ref.shape, f"{key}: shape {value.shape} != {ref.shape}")
            err = relerr(value, ref, 1e-6) if ref.size else 0.0
            _require(err < TRAIN_TOL, f"{key}: max rel error {err:.2e}")

    return offered(features[call.kind], check)


def _norm_checks() -> dict[str, tuple[CheckFn, bool]]:
    """The optional checks of GroupNorm and ghost-batch BN: layer, logits, training steps."""
    table: dict[str, tuple[CheckFn, bool]] = {}
    for name, call in NORM_CALLS.items():
        table[f"norm-apply[{name}]"] = (norm_apply_match(call), True)
    for name, spec in FEATURE_SPECS.items():
        table[f"params-round-trip[{name}]"] = (offered(spec, params_round_trip(spec)), True)
        for mode in ("eval", "train"):
            check = logits_match(spec, mode == "train")
            table[f"logits[{name}-{mode}]"] = (offered(spec, check), True)
        check = k_steps_match(spec, OPTIMIZERS["sgd-momentum"])
        table[f"k-steps[{name}-sgd-momentum]"] = (offered(spec, check), True)
    return table


def _table() -> dict[str, tuple[CheckFn, bool]]:
    """Check name -> (check, optional)."""
    table: dict[str, tuple[CheckFn, bool]] = {"versions": (versions_reported, False)}
    for name, spec in SPECS.items():
        table[f"params-round-trip[{name}]"] = (params_round_trip(spec), False)
        for mode in ("eval", "train"):
            table[f"logits[{name}-{mode}]"] = (logits_match(spec, mode == "train"), False)
        table[f"pre-activations[{name}]"] = (pre_activations_match(spec), True)
    for name in ("bn", "nobn", "ln"):
        for opt_name, train in OPTIMIZERS.items():
            table[f"k-steps[{name}-{opt_name}]"] = (k_steps_match(SPECS[name], train), False)
    table["epoch-metrics"] = (epoch_metrics, False)
    table["callback-stops"] = (callback_stops, False)
    table["same-seed"] = (same_seed, False)
    for name in ("bn", "nobn"):
        table[f"native-init[{name}]"] = (native_init(SPECS[name]), False)
    for mode in ("train", "eval"):
        table[f"batchnorm[{mode}]"] = (batchnorm_match(mode == "train"), True)
    table.update(_norm_checks())
    table["stepper"] = (stepper_runs, True)
    table["matmul-rates"] = (matmul_rates_positive, True)
    return table


CHECKS = _table()
CHECK_NAMES: tuple[str, ...] = tuple(CHECKS)


def run_check(backend: Backend, name: str) -> CheckResult:
    """Run one check; an exception is a failure, except NotImplementedError of an optional one."""
    check, optional = CHECKS[name]
    try:
        check(backend)
    except NotImplementedError as exc:
        status = NOT_IMPLEMENTED if optional else FAIL
        return CheckResult(name, status, f"NotImplementedError: {exc}".splitlines()[0])
    except Exception as exc:  # a failing check is a result, the others still run
        return CheckResult(name, FAIL, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    return CheckResult(name, PASS)


def conformance_task(backend: Backend, cell: CellSpec, emit: Any) -> dict[str, Any]:
    """The worker task: every check (or those named in ``cell.extra['checks']``)."""
    names = cell.extra.get("checks") or CHECK_NAMES
    return {"status": "ok", "checks": [run_check(backend, n).to_dict() for n in names]}
