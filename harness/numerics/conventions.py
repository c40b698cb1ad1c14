"""Each framework's BN conventions, inferred from what its layer outputs (never typed in).

Probes apply the backend's own layer to inputs chosen so that one unknown can be solved for:
- momentum: from ``running_mean - mean0 = w * (batch_mean - mean0)``, least squares over
  features, ``w`` being the weight of the new batch statistic;
- running variance: the variance fed to the running average, ``(running_var - (1-w) var0) / w``,
  compared with the biased and the unbiased batch variance;
- epsilon: in eval mode with running mean 0, running var 0, scale 1, offset 0, the layer returns
  ``x / sqrt(eps)``; in training mode on a batch of std 1e-3, ``eps = ((x - m) / out)^2 - var``;
- batch size 1 in training: an error (with its message), NaN, or a silent output.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from harness.backend import Backend, BNCall, BNResult
from harness.numerics.cases import Case, layer_inputs
from harness.numerics.errors import max_rel
from harness.numerics.reference import Convention, batch_variance
from harness.specs import BN_EPSILON, BN_MOMENTUM

Arrays = dict[str, np.ndarray]
CORE_MOMENTUM = BN_MOMENTUM
CORE_EPSILON = BN_EPSILON
PROBE = Case("probe", "probe", 16, 32)
STYLES = ((0.1, "torch style: momentum=0.1"), (0.01, "Keras/Flax style: momentum=0.99"))


def call_layer(
    backend: Backend, x: np.ndarray, params: Arrays, call: BNCall, upstream: np.ndarray
) -> BNResult:
    """``backend.batchnorm`` with any exception turned into a :class:`BNResult` with ``error``."""
    try:
        return backend.batchnorm(x, params, call, upstream)
    except Exception as exc:  # a refusal (batch size 1, dtype) is a measurement, not a crash
        empty = np.zeros(0, np.float32)
        return BNResult(empty, None, None, None, empty, empty, f"{type(exc).__name__}: {exc}")


def momentum_weight(x: np.ndarray, mean0: np.ndarray, running_mean: np.ndarray) -> float:
    """Weight of the new batch mean in the running mean after one step (least squares)."""
    step = np.asarray(x, np.float64).mean(0) - mean0
    moved = np.asarray(running_mean, np.float64) - mean0
    return float((moved * step).sum() / (step * step).sum())


def momentum_label(weight: float) -> str:
    """The measured new-stat weight, named after the framework style it matches."""
    for value, style in STYLES:
        if math.isfinite(weight) and abs(weight - value) <= 1e-3 * value:
            return f"new-stat weight {weight:.4g} ({style})"
    return f"new-stat weight {weight:.4g} (torch momentum={weight:.4g}, Keras {1 - weight:.4g})"


def asked_text(probe: dict[str, Any], asked: float) -> str:
    """The measured new-stat weight of a probe that asked for ``asked``, flagged if different."""
    if "weight" not in probe:
        return f"not measured ({probe.get('error', '')[:60]})"
    weight = probe["weight"]
    ok = abs(weight - asked) <= 1e-3 * asked
    return f"{weight:.4f}" + ("" if ok else f" (asked {asked}: mistranslated)")


def variance_text(probe: dict[str, Any]) -> str:
    """Which variance a probe found fed to the running average, with the measured ratio."""
    v = probe.get("variance")
    if not v:
        return "not measured"
    return (
        f"{v['fed']} (fed / biased = {v['ratio_to_biased']:.4f}; n/(n-1) = "
        f"{v['unbiased_factor']:.4f} at n = {v['n']})"
    )


def variance_fed(
    x: np.ndarray, var0: np.ndarray, weight: float, running_var: np.ndarray
) -> dict[str, Any]:
    """Which batch variance went into the running average: biased (/n) or unbiased (/(n-1))."""
    fed = (np.asarray(running_var, np.float64) - (1 - weight) * var0) / weight
    biased, unbiased = batch_variance(x, False), batch_variance(x, True)
    err_b, err_u = max_rel(fed, biased), max_rel(fed, unbiased)
    n = int(np.shape(x)[0])
    return {
        "fed": "unbiased" if err_u < err_b else "biased",
        "ratio_to_biased": float(np.median(fed / biased)),
        "n": n,
        "unbiased_factor": n / (n - 1),
        "rel_err_if_biased": err_b,
        "rel_err_if_unbiased": err_u,
    }


def epsilon_from_eval(x: np.ndarray, out: np.ndarray) -> float:
    """Epsilon from eval mode with running mean 0, var 0, scale 1, offset 0: ``(x/out)^2``."""
    return float(np.median((np.asarray(x, np.float64) / np.asarray(out, np.float64)) ** 2))


def epsilon_from_train(x: np.ndarray, out: np.ndarray) -> float:
    """Epsilon from training mode (scale 1, offset 0): ``((x - m) / out)^2 - var``, median."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(0)
    big = np.abs(centred) >= np.median(np.abs(centred))  # avoid dividing noise by noise
    each = (centred / np.asarray(out, np.float64)) ** 2 - batch_variance(x, False)
    return float(np.median(each[big]))


def batch_one(x: np.ndarray, params: Arrays, weight: float, result: BNResult) -> dict[str, Any]:
    """What a training step on a single sample did: error, NaN, or a silent output."""
    if result.error:
        return {"kind": "error", "message": result.error[:300], "label": f"error: {result.error}"}
    out = np.asarray(result.out, np.float64)
    if not np.all(np.isfinite(out)):
        return {"kind": "nan", "label": "no error, NaN output"}
    gap = float(np.max(np.abs(out - params["offset"])))
    running_var = np.asarray(result.running_var, np.float64)
    factor = float(np.median(running_var / params["var"]))
    fed = float(np.median((running_var - (1 - weight) * params["var"]) / weight))
    fed = 0.0 if abs(fed) < 1e-5 else fed  # float32 rounding of the running variance
    same = gap <= 1e-3 * max(1.0, float(np.max(np.abs(params["offset"]))))
    label = "no error, output = offset" if same else "no error, output != offset"
    label += f" (max |out - offset| {gap:.2g})" if gap else " exactly"
    label += f", running var x{factor:.4g} (batch variance {fed:.3g} fed in)"
    if result.grad_x is not None and not np.any(result.grad_x):
        label += ", grad_x = 0"
    return {
        "kind": "silent",
        "label": label,
        "out_minus_offset": gap,
        "running_var_factor": factor,
        "variance_fed": fed,
    }


def _unit(d: int, mean: float = 0.0, var: float = 1.0) -> Arrays:
    return {
        "scale": np.ones(d, np.float32),
        "offset": np.zeros(d, np.float32),
        "mean": np.full(d, mean, np.float32),
        "var": np.full(d, var, np.float32),
    }


def _momentum_and_variance(backend: Backend, call: BNCall) -> dict[str, Any]:
    x, params, upstream = layer_inputs(PROBE)
    start = {**params, "mean": np.zeros(PROBE.d, np.float32), "var": np.ones(PROBE.d, np.float32)}
    result = call_layer(backend, x, start, call, upstream)
    if result.error:
        return {"error": result.error}
    weight = momentum_weight(x, start["mean"], result.running_mean)
    return {
        "weight": weight,
        "label": momentum_label(weight),
        "variance": variance_fed(x, start["var"], weight, result.running_var),
    }


def _epsilons(backend: Backend) -> dict[str, float]:
    rng = np.random.default_rng(11)
    shape = (PROBE.n, PROBE.d)
    away = (rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)
    small = (1e-3 * rng.standard_normal(shape)).astype(np.float32)
    ones = np.ones(shape, np.float32)
    out = {}
    for key, eps in (("native", None), ("core", CORE_EPSILON)):
        ev = call_layer(backend, away, _unit(PROBE.d, var=0.0), BNCall(False, None, eps), ones)
        tr = call_layer(backend, small, _unit(PROBE.d), BNCall(True, None, eps), ones)
        out[f"{key}_eval"] = math.nan if ev.error else epsilon_from_eval(away, ev.out)
        out[f"{key}_train"] = math.nan if tr.error else epsilon_from_train(small, tr.out)
    return out


def probe_conventions(backend: Backend) -> dict[str, Any]:
    """Measure momentum, running-variance and epsilon conventions and batch-size-1 behaviour."""
    core = _momentum_and_variance(backend, BNCall(True, CORE_MOMENTUM, CORE_EPSILON))
    native = _momentum_and_variance(backend, BNCall(True, None, None))
    x, params, upstream = layer_inputs(Case("batch 1 probe", "probe", 1, PROBE.d))
    params = {**params, "mean": np.zeros(PROBE.d, np.float32), "var": np.ones(PROBE.d, np.float32)}
    single = call_layer(backend, x, params, BNCall(True, CORE_MOMENTUM, CORE_EPSILON), upstream)
    return {
        "momentum_asked": CORE_MOMENTUM,
        "epsilon_asked": CORE_EPSILON,
        "core": core,
        "native": native,
        "epsilon": _epsilons(backend),
        "batch1": batch_one(x, params, core.get("weight", CORE_MOMENTUM), single),
    }


def probe_variants(backend: Backend, variants: list[str]) -> dict[str, dict[str, Any]]:
    """Momentum weight and the variance fed to the running average of each layer variant,
    asked for the core momentum and epsilon (e.g. TensorFlow's fused op: unbiased)."""
    call = BNCall(True, CORE_MOMENTUM, CORE_EPSILON)
    return {v: _momentum_and_variance(backend, replace(call, variant=v)) for v in variants}


def reference_conventions(probes: dict[str, Any]) -> tuple[Convention, Convention]:
    """The reference's conventions for this backend: as asked, and its native defaults.

    Asked-for momentum and epsilon are the requested ones (so a mistranslation shows up as an
    error); the running-variance convention, which no framework lets you choose, is the measured
    one. Native defaults are all measured; an unmeasurable one falls back to the core value.
    """
    variance = probes["core"].get("variance") or probes["native"].get("variance") or {}
    unbiased = variance.get("fed") == "unbiased"
    native_eps = probes["epsilon"].get("native_eval", math.nan)
    native = Convention(
        momentum=probes["native"].get("weight", CORE_MOMENTUM),
        epsilon=native_eps if math.isfinite(native_eps) else CORE_EPSILON,
        unbiased=unbiased,
    )
    return Convention(CORE_MOMENTUM, CORE_EPSILON, unbiased), native
