"""The optional probes of the contract on torch: loss and gradients at given canonical parameters
(with injected noise after each BN layer), and the batch statistics of every BN layer.

A functional forward over the canonical arrays (``x @ kernel + bias``, ``F.batch_norm`` in
training mode with no running buffers, the activation), so nothing of a model changes: the core
holds the parameters (:mod:`harness.why`). Same module name and functions in every adapter.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
Tensors = dict[str, torch.Tensor]
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}
TRAINABLE = ("kernel", "bias", "scale", "offset")


def check_spec(spec: ModelSpec) -> None:
    """The probes cover MLPs without normalization or with BatchNorm, without dropout."""
    if spec.norm not in ("none", "batchnorm") or spec.dropout > 0 or spec.ghost_batch > 0:
        raise NotImplementedError(
            "probes support norm none/batchnorm without dropout or ghost batches only"
        )


def forward(
    spec: ModelSpec, t: Tensors, x: torch.Tensor, noise: Tensors, stats: Tensors
) -> torch.Tensor:
    """Logits in training mode; fills ``stats`` with each BN input's batch mean and biased var."""
    act = ACTIVATIONS[spec.activation]
    h = x
    for i in range(len(spec.hidden_sizes)):
        h = h @ t[f"dense_{i}/kernel"] + t[f"dense_{i}/bias"]
        if spec.placement == "after":
            h = act(h)
        if spec.has_norm:
            stats[f"norm_{i}/mean"] = h.detach().mean(0)
            stats[f"norm_{i}/var"] = h.detach().var(0, unbiased=False)
            h = F.batch_norm(
                h, None, None, t[f"norm_{i}/scale"], t[f"norm_{i}/offset"], True, 0.0,
                spec.bn_epsilon,
            )  # fmt: skip
            if noise:
                h = h * noise[f"norm_{i}/noise_scale"] + noise[f"norm_{i}/noise_shift"]
        if spec.placement == "before":
            h = act(h)
    last = len(spec.hidden_sizes)
    return h @ t[f"dense_{last}/kernel"] + t[f"dense_{last}/bias"]


def _tensors(arrays: Params, device: torch.device, grad: bool = False) -> Tensors:
    out = {}
    for name, value in arrays.items():
        tensor = torch.as_tensor(np.ascontiguousarray(value, np.float32), device=device)
        out[name] = tensor.requires_grad_(grad and name.rsplit("/", 1)[-1] in TRAINABLE)
    return out


def loss_and_grads(
    spec: ModelSpec,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    noise: Params | None,
    device: torch.device,
) -> tuple[float, float, Params]:
    """Mean cross-entropy, accuracy and the gradients of every trainable canonical array."""
    check_spec(spec)
    t = _tensors(params, device, grad=True)
    xt = torch.as_tensor(x, device=device)
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    logits = forward(spec, t, xt, _tensors(noise or {}, device), {})
    loss = F.cross_entropy(logits, yt)
    names = [n for n, v in t.items() if v.requires_grad]
    grads = torch.autograd.grad(loss, [t[n] for n in names])
    acc = (logits.detach().argmax(1) == yt).float().mean().item()
    return float(loss.item()), float(acc), {n: g.cpu().numpy() for n, g in zip(names, grads)}


@torch.no_grad()
def batch_statistics(
    spec: ModelSpec, params: Params, x: np.ndarray, device: torch.device
) -> Params:
    """Each BN layer's input mean and biased variance over the batch ``x`` (training mode)."""
    check_spec(spec)
    stats: Tensors = {}
    forward(spec, _tensors(params, device), torch.as_tensor(x, device=device), {}, stats)
    return {name: value.cpu().numpy() for name, value in stats.items()}
