"""What a training cell records about conventions: the effective values, and eval mode with the
other running-variance convention (a measured counterfactual).

Runs inside the worker (it calls the live backend) but imports no framework.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.backend import Backend, TrainData
from harness.specs import ModelSpec, TrainSpec

Params = dict[str, np.ndarray]


def effective(backend: Backend, spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
    """The backend's :meth:`~harness.backend.Backend.conventions`, or the error it raised."""
    try:
        return dict(backend.conventions(spec, train))
    except Exception as exc:  # an adapter's bug must not lose the trained cell
        return {"error": f"{type(exc).__name__}: {exc}"}


def swap_running_var(var: np.ndarray, fed: str, n: int, momentum: float, steps: int) -> np.ndarray:
    """The running variance the *other* convention would hold after the same ``steps``.

    A running average started at 1 with new-stat weight ``m`` holds ``a + S`` where
    ``a = (1-m)^steps`` and ``S`` averages the variances fed; unbiased ones are ``n/(n-1)``
    times the biased, so ``S`` is rescaled by that factor (or its inverse) and ``a`` kept.
    """
    start = (1.0 - momentum) ** steps
    factor = (n - 1) / n if fed == "unbiased" else n / (n - 1)
    return (start + factor * (np.asarray(var, np.float64) - start)).astype(np.float32)


def other_running_var(
    backend: Backend, model: Any, data: TrainData, conv: dict[str, Any], batch: int, steps: int
) -> dict[str, Any]:
    """Eval-mode validation loss and accuracy with every BN running variance swapped to the
    other convention (``swap_running_var``), the model restored afterwards."""
    fed = conv.get("running_var")
    momentum = conv.get("bn_momentum")
    if fed not in ("biased", "unbiased") or not isinstance(momentum, float) or batch < 2:
        return {}
    params = backend.get_params(model)
    swapped = {
        k: swap_running_var(v, fed, batch, momentum, steps) if k.endswith("/var") else v
        for k, v in params.items()
    }
    if swapped.keys() == params.keys() and not any(k.endswith("/var") for k in params):
        return {}
    backend.set_params(model, swapped)
    try:
        loss, acc = backend.evaluate(model, data.x_val, data.y_val)
    finally:
        backend.set_params(model, params)
    other = "biased" if fed == "unbiased" else "unbiased"
    return {"running_var": other, "val_loss": loss, "val_acc": acc}
