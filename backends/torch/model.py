"""PyTorch MLP construction and the canonical parameter mapping."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.backends.torch.conventions import bn_layer
from harness.backends.torch.norms import make_norm
from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Linear -> [norm] -> activation (or activation -> norm) -> [dropout], then a Linear head."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.dense = nn.ModuleList(nn.Linear(i, o) for i, o in spec.layer_sizes())
        self.norms = nn.ModuleList(self._norm(w) for w in spec.hidden_sizes if spec.has_norm)
        layers: list[nn.Module] = []
        for i in range(len(spec.hidden_sizes)):
            block: list[nn.Module] = [self.dense[i], ACTIVATIONS[spec.activation]()]
            if spec.has_norm:
                block.insert(1 if spec.placement == "before" else 2, self.norms[i])
            if spec.dropout > 0:
                block.append(nn.Dropout(spec.dropout))
            layers.extend(block)
        layers.append(self.dense[-1])
        self.body = nn.Sequential(*layers)

    def _norm(self, width: int) -> nn.Module:
        spec = self.spec
        if spec.features:  # GroupNorm or ghost-batch BN (norms.py)
            kind, groups, ghost = spec.features[0], spec.norm_groups, spec.ghost_batch
            return make_norm(kind, width, groups, ghost, spec.bn_momentum, spec.bn_epsilon)
        if self.spec.norm == "layernorm":
            return nn.LayerNorm(width, eps=self.spec.bn_epsilon)
        return bn_layer(self.spec, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of flattened inputs."""
        return self.body(x)

    def pre_activations(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Input of hidden layer ``layer``'s activation (the BN paper's Figure 1 quantity)."""
        act_type = ACTIVATIONS[self.spec.activation]
        seen = -1
        for module in self.body:
            if isinstance(module, act_type):
                seen += 1
                if seen == layer:
                    return x
            x = module(x)
        raise IndexError(layer)


def _tensor(value: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(value), dtype=like.dtype, device=like.device)


def get_params(model: MLP) -> Params:
    """Canonical layout: kernels transposed from torch's (out, in) to (in, out)."""
    out: Params = {}
    for i, lin in enumerate(model.dense):
        out[f"dense_{i}/kernel"] = lin.weight.detach().cpu().numpy().T.copy()
        out[f"dense_{i}/bias"] = lin.bias.detach().cpu().numpy().copy()
    for i, norm in enumerate(model.norms):
        out[f"norm_{i}/scale"] = norm.weight.detach().cpu().numpy().copy()
        out[f"norm_{i}/offset"] = norm.bias.detach().cpu().numpy().copy()
        if isinstance(norm, nn.BatchNorm1d):
            out[f"norm_{i}/mean"] = norm.running_mean.detach().cpu().numpy().copy()
            out[f"norm_{i}/var"] = norm.running_var.detach().cpu().numpy().copy()
    return out


@torch.no_grad()
def set_params(model: MLP, params: Params) -> None:
    """Copy canonical arrays into the module (transposing kernels)."""
    for i, lin in enumerate(model.dense):
        lin.weight.copy_(_tensor(params[f"dense_{i}/kernel"].T, lin.weight))
        lin.bias.copy_(_tensor(params[f"dense_{i}/bias"], lin.bias))
    for i, norm in enumerate(model.norms):
        norm.weight.copy_(_tensor(params[f"norm_{i}/scale"], norm.weight))
        norm.bias.copy_(_tensor(params[f"norm_{i}/offset"], norm.bias))
        if isinstance(norm, nn.BatchNorm1d):
            norm.running_mean.copy_(_tensor(params[f"norm_{i}/mean"], norm.running_mean))
            norm.running_var.copy_(_tensor(params[f"norm_{i}/var"], norm.running_var))
