"""One traced training step of the torch MLP: every layer's output, its gradient (hooks and
``retain_grad``), the parameter gradients and the BN running statistics after the step."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.backends.torch.model import MLP, set_params
from harness.numerics.difftest import layer_spec
from harness.numerics.reference import trace_layers
from harness.specs import ModelSpec

Arrays = dict[str, np.ndarray]
NATIVE = (0.1, 1e-5)
"""``nn.BatchNorm1d``'s own momentum (weight of the new statistic) and epsilon."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def _biased_feed(bn: nn.BatchNorm1d) -> None:
    """Test mutation: running variance fed with the biased batch variance (Keras/Flax rule)."""
    saved: dict[str, torch.Tensor] = {}
    bn.register_forward_pre_hook(lambda m, inp: saved.update(var=m.running_var.clone()))

    def hook(m: nn.BatchNorm1d, inp: Any, out: Any) -> None:
        with torch.no_grad():
            var = inp[0].var(0, unbiased=False)
            # a new buffer: the old one is saved for the backward pass
            m.running_var = (1 - m.momentum) * saved["var"] + m.momentum * var

    bn.register_forward_hook(hook)


def _keeper(name: str, outs: dict[str, torch.Tensor]) -> Any:
    """A forward hook keeping the layer's output, with its gradient retained."""

    def hook(module: nn.Module, inp: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        outs[name] = out

    return hook


def trace_step(
    spec: ModelSpec,
    params: Arrays,
    x: np.ndarray,
    y: np.ndarray,
    device: torch.device,
    native: bool = False,
    mutate: str = "",
) -> Arrays:
    """See :meth:`harness.backend.Backend.trace_step`."""
    spec = layer_spec(spec, NATIVE if native else None, mutate)
    model = MLP(spec).to(device)
    set_params(model, params)
    model.train()
    names, outs = trace_layers(spec), {}
    if len(names) != len(model.body):
        raise ValueError(f"torch MLP has {len(model.body)} layers, trace expects {len(names)}")
    for name, module in zip(names, model.body):
        if mutate == "running_var" and isinstance(module, nn.BatchNorm1d):
            _biased_feed(module)
        module.register_forward_hook(_keeper(name, outs))
    xt = torch.as_tensor(np.asarray(x, np.float32), device=device)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)
    loss = F.cross_entropy(model(xt), yt)
    loss.backward()
    result: Arrays = {"loss": np.float64(loss.item())}
    for name, value in outs.items():
        result[f"{name}/out"], result[f"{name}/grad"] = _np(value), _np(value.grad)
    for i, lin in enumerate(model.dense):
        result[f"dense_{i}/grad_kernel"] = _np(lin.weight.grad).T.copy()
        result[f"dense_{i}/grad_bias"] = _np(lin.bias.grad)
    for i, norm in enumerate(model.norms):
        result[f"norm_{i}/grad_scale"] = _np(norm.weight.grad)
        result[f"norm_{i}/grad_offset"] = _np(norm.bias.grad)
        if isinstance(norm, nn.BatchNorm1d):
            result[f"norm_{i}/mean"], result[f"norm_{i}/var"] = (
                _np(norm.running_mean),
                _np(norm.running_var),
            )
    return result
