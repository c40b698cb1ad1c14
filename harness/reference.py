"""A float64 NumPy reference of the MLP: forward, backward, SGD and Adam with torch semantics.

Used by the conformance tests and the numerics suite to check every backend against the same
arithmetic rather than against one another. BN normalizes with the biased batch variance and
updates running statistics in the core convention (``momentum`` = weight of the new statistic),
with either the biased or the unbiased (PyTorch) batch variance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.specs import ModelSpec, TrainSpec

Params = dict[str, np.ndarray]
ACT: dict[str, tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]] = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
}


def bn_forward(
    x: np.ndarray, scale: np.ndarray, offset: np.ndarray, eps: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Training-mode BN (biased variance, two-pass); returns output and the backward cache."""
    mean = x.mean(0)
    var = ((x - mean) ** 2).mean(0)
    inv = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * inv
    return xhat * scale + offset, {
        "xhat": xhat,
        "inv": inv,
        "scale": scale,
        "mean": mean,
        "var": var,
    }


def bn_backward(g: np.ndarray, cache: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Gradients (x, scale, offset) of training-mode BN for upstream gradient ``g``."""
    xhat, inv, scale = cache["xhat"], cache["inv"], cache["scale"]
    n = g.shape[0]
    dxhat = g * scale
    dx = inv / n * (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    return dx, (g * xhat).sum(0), g.sum(0)


def running_update(old: np.ndarray, batch: np.ndarray, momentum: float) -> np.ndarray:
    """Running average in the core convention: ``(1 - m) * old + m * batch``."""
    return (1 - momentum) * old + momentum * batch


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    p[np.arange(n), y] -= 1
    return loss, p / n


@dataclass
class ReferenceMLP:
    """The MLP of :class:`ModelSpec` in float64 (no dropout). ``unbiased`` = PyTorch running var."""

    spec: ModelSpec
    params: Params
    unbiased_running_var: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    noise: Params | None = None
    """Per hidden layer ``norm_{i}/noise_scale`` and ``noise_shift``, applied to the BN output in
    training mode as ``out * scale + shift`` (the noise-injection suite's float64 reference)."""

    def __post_init__(self) -> None:
        self.params = {k: np.asarray(v, np.float64).copy() for k, v in self.params.items()}

    def forward(
        self, x: np.ndarray, training: bool, update: bool = False
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Logits and per-layer caches; ``update`` refreshes running statistics (training)."""
        act, _ = ACT[self.spec.activation]
        h, caches = np.asarray(x, np.float64), []
        for i in range(len(self.spec.hidden_sizes)):
            cache: dict[str, Any] = {"in": h}
            z = h @ self.params[f"dense_{i}/kernel"] + self.params[f"dense_{i}/bias"]
            if self.spec.has_norm and self.spec.placement == "before":
                z = self._norm(i, z, training, update, cache)
            cache["z"], h = z, act(z)
            cache["a"] = h
            if self.spec.has_norm and self.spec.placement == "after":
                h = self._norm(i, h, training, update, cache)
            caches.append(cache)
        last = len(self.spec.hidden_sizes)
        caches.append({"in": h})
        return h @ self.params[f"dense_{last}/kernel"] + self.params[f"dense_{last}/bias"], caches

    def _norm(
        self, i: int, z: np.ndarray, training: bool, update: bool, cache: dict[str, Any]
    ) -> np.ndarray:
        p, eps = self.params, self.spec.bn_epsilon
        if self.spec.norm == "layernorm":
            out, bn = bn_forward(z.T, np.ones(len(z)), np.zeros(len(z)), eps)
            cache["ln"] = bn
            return out.T * p[f"norm_{i}/scale"] + p[f"norm_{i}/offset"]
        if not training:
            inv = 1 / np.sqrt(p[f"norm_{i}/var"] + eps)
            cache["eval_inv"] = inv
            return (z - p[f"norm_{i}/mean"]) * inv * p[f"norm_{i}/scale"] + p[f"norm_{i}/offset"]
        out, bn = bn_forward(z, p[f"norm_{i}/scale"], p[f"norm_{i}/offset"], eps)
        cache["bn"] = bn
        if self.noise:
            out = out * self.noise[f"norm_{i}/noise_scale"] + self.noise[f"norm_{i}/noise_shift"]
        if update:
            n = z.shape[0]
            var = bn["var"] * (n / (n - 1) if self.unbiased_running_var and n > 1 else 1)
            m = self.spec.bn_momentum
            p[f"norm_{i}/mean"] = running_update(p[f"norm_{i}/mean"], bn["mean"], m)
            p[f"norm_{i}/var"] = running_update(p[f"norm_{i}/var"], var, m)
        return out

    def _norm_backward(
        self, i: int, g: np.ndarray, cache: dict[str, Any], grads: Params
    ) -> np.ndarray:
        if "ln" in cache:
            ln = cache["ln"]
            grads[f"norm_{i}/scale"] = (g * ln["xhat"].T).sum(0)
            grads[f"norm_{i}/offset"] = g.sum(0)
            dx, _, _ = bn_backward((g * self.params[f"norm_{i}/scale"]).T, ln)
            return dx.T
        if self.noise:
            g = g * self.noise[f"norm_{i}/noise_scale"]
        dx, grads[f"norm_{i}/scale"], grads[f"norm_{i}/offset"] = bn_backward(g, cache["bn"])
        return dx

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, Params]:
        """Training-mode loss, logits and gradients; running statistics updated."""
        logits, caches = self.forward(x, training=True, update=True)
        loss, g = softmax_xent(logits, y)
        grads: Params = {}
        _, dact = ACT[self.spec.activation]
        for i in reversed(range(len(caches))):
            cache = caches[i]
            if i < len(self.spec.hidden_sizes):
                if self.spec.has_norm and self.spec.placement == "after":
                    g = self._norm_backward(i, g, cache, grads)
                g = g * dact(cache["z"], cache["a"])
                if self.spec.has_norm and self.spec.placement == "before":
                    g = self._norm_backward(i, g, cache, grads)
            grads[f"dense_{i}/kernel"] = cache["in"].T @ g
            grads[f"dense_{i}/bias"] = g.sum(0)
            g = g @ self.params[f"dense_{i}/kernel"].T
        return loss, logits, grads

    def step(
        self, x: np.ndarray, y: np.ndarray, train: TrainSpec, lr: float, return_logits: bool = False
    ) -> Any:
        """One optimizer step (torch.optim semantics, coupled weight decay); returns the loss.

        With ``return_logits`` it returns ``(loss, logits)`` of the training forward pass.
        """
        loss, logits, grads = self.loss_and_grads(x, y)
        t = self.state["t"] = self.state.get("t", 0) + 1
        for name, grad in grads.items():
            grad = grad + train.weight_decay * self.params[name]
            if train.optimizer == "adam":
                self.params[name] -= lr * self._adam(name, grad, train, t)
                continue
            buf = self.state.get(name)
            buf = grad.copy() if buf is None else train.momentum * buf + grad
            self.state[name] = buf
            update = grad + train.momentum * buf if train.nesterov else buf
            self.params[name] -= lr * (update if train.momentum else grad)
        return (loss, logits) if return_logits else loss

    def _adam(self, name: str, grad: np.ndarray, train: TrainSpec, t: int) -> np.ndarray:
        m = self.state.get(f"{name}/m", np.zeros_like(grad))
        v = self.state.get(f"{name}/v", np.zeros_like(grad))
        m = train.adam_beta1 * m + (1 - train.adam_beta1) * grad
        v = train.adam_beta2 * v + (1 - train.adam_beta2) * grad * grad
        self.state[f"{name}/m"], self.state[f"{name}/v"] = m, v
        m_hat = m / (1 - train.adam_beta1**t)
        v_hat = v / (1 - train.adam_beta2**t)
        return m_hat / (np.sqrt(v_hat) + train.adam_epsilon)  # type: ignore[no-any-return]
