"""Santurkar et al. (2018)'s measurements at one training step, from gradients only.

Internal covariate shift (their Definition 2.1): for layer ``i`` with parameters ``W_i``,
``G = ∇_{W_i} L(W_1..W_k)`` and ``G' = ∇_{W_i} L(W'_1..W'_{i-1}, W_i..W_k)`` on the same batch,
where ``W'`` are the parameters after this step's update: how much the layer's gradient changes
because the layers before it moved. Reported as ``||G − G'||₂`` and the cosine of G and G'.

The loss landscape along the gradient (their section 3.1): from ``θ`` with gradient ``g``, the
points ``θ − η g`` for ``η`` in ``lr × STEP_FACTORS``: the loss variation (max − min of the loss
over those points and ``θ``), the gradient predictiveness (max of ``||∇L(θ − η g) − g||₂``) and the
effective β-smoothness (max of ``||∇L(θ − η g) − g||₂ / ||η g||₂``). The same batch and the same
injected noise as the step throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.why.sgd import CoreSGD

Params = dict[str, np.ndarray]
STEP_FACTORS = (0.5, 1.0, 2.0, 4.0)


def _flat(grads: Params) -> np.ndarray:
    return np.concatenate([np.ravel(grads[k]).astype(np.float64) for k in sorted(grads)])


def _before(name: str, layer: int) -> bool:
    return int(name.split("/")[0].rsplit("_", 1)[1]) < layer


def covariate_shift(
    sgd: CoreSGD, batch: tuple[np.ndarray, np.ndarray], noise: Any, grads: Params, moved: Params
) -> dict[str, list[float]]:
    """Per Dense layer ``i >= 1``: ``||G − G'||₂`` and ``cos(G, G')`` of ``dense_i/kernel``."""
    l2, cos = [], []
    for layer in range(1, len(sgd.spec.hidden_sizes) + 1):
        mixed = {k: (moved[k] if _before(k, layer) else v) for k, v in sgd.params.items()}
        _, _, shifted = sgd.grads(mixed, *batch, noise)
        g = grads[f"dense_{layer}/kernel"].astype(np.float64).ravel()
        h = shifted[f"dense_{layer}/kernel"].astype(np.float64).ravel()
        l2.append(float(np.linalg.norm(g - h)))
        denom = float(np.linalg.norm(g) * np.linalg.norm(h))
        cos.append(float(g @ h / denom) if denom > 0 else float("nan"))
    return {"ics_l2": l2, "ics_cos": cos}


def along_gradient(
    sgd: CoreSGD, batch: tuple[np.ndarray, np.ndarray], noise: Any, loss: float, grads: Params
) -> dict[str, float]:
    """Loss variation, gradient predictiveness and effective β-smoothness along ``-grads``."""
    g = _flat(grads)
    norm = float(np.linalg.norm(g))
    losses, changes, betas = [loss], [], []
    for factor in STEP_FACTORS:
        eta = sgd.lr * factor
        point = {k: (v - eta * grads[k] if k in grads else v) for k, v in sgd.params.items()}
        point_loss, _, point_grads = sgd.grads(point, *batch, noise)
        change = float(np.linalg.norm(_flat(point_grads) - g))
        losses.append(point_loss)
        changes.append(change)
        betas.append(change / (eta * norm) if norm > 0 else float("nan"))
    finite = [v for v in losses if np.isfinite(v)]
    return {
        "loss_variation": float(max(finite) - min(finite)) if finite else float("nan"),
        "grad_change": float(max(changes)),
        "beta_smoothness": float(max(betas)),
        "grad_norm": norm,
    }
