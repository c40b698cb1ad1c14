"""PyTorch's own defaults, read from its signatures, and the spec's conventions applied.

``--defaults native`` leaves a convention out of the constructor call, so torch's own default
applies; what that default is comes from ``inspect.signature`` of the installed version, never
from memory. ``running_var="biased"`` needs a subclass: ``nn.BatchNorm1d`` always feeds the
unbiased batch variance to its running average.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from harness.specs import ModelSpec, TrainSpec


def default(obj: Any, name: str) -> Any:
    """The default value of parameter ``name`` in ``obj``'s signature."""
    return inspect.signature(obj).parameters[name].default


class BiasedRunningVarBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` whose running variance averages the *biased* batch variance (Keras,
    Flax): after torch's update (weight ``m`` on ``n/(n-1) var``), ``m var / (n-1)`` is taken
    back off, which leaves ``(1-m) old + m var`` exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Torch's own forward, then the running variance corrected in training mode."""
        out = super().forward(x)
        if self.training and self.track_running_stats and x.shape[0] > 1:
            with torch.no_grad():
                var = x.var(0, unbiased=False)
                self.running_var.sub_(float(self.momentum) * var / (x.shape[0] - 1))
        return out


def bn_layer(spec: ModelSpec, width: int) -> nn.Module:
    """The BN layer of ``spec``: translated momentum/epsilon, or torch's own where native.

    torch's momentum is the weight of the new batch statistic: the core's convention.
    """
    kwargs: dict[str, Any] = {}
    if "bn_momentum" not in spec.native:
        kwargs["momentum"] = spec.bn_momentum
    if "bn_epsilon" not in spec.native:
        kwargs["eps"] = spec.bn_epsilon
    cls = BiasedRunningVarBatchNorm1d if spec.running_var == "biased" else nn.BatchNorm1d
    return cls(width, **kwargs)


def adam_epsilon(train: TrainSpec) -> float:
    """Adam's epsilon: the spec's, or torch's own default."""
    if "adam_epsilon" in train.native:
        return float(default(torch.optim.Adam, "eps"))
    return float(train.adam_epsilon)


def conventions(spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
    """The conventions a model of ``spec`` trained with ``train`` uses (core convention)."""
    own = set(spec.native)
    momentum = default(nn.BatchNorm1d, "momentum") if "bn_momentum" in own else spec.bn_momentum
    epsilon = default(nn.BatchNorm1d, "eps") if "bn_epsilon" in own else spec.bn_epsilon
    return {
        "init": "torch default (kaiming-uniform a=sqrt(5))"
        if spec.init == "native"
        else "canonical",
        "bn_momentum": float(momentum),
        "bn_epsilon": float(epsilon),
        "bn_variance": "two-pass",
        "running_var": "biased" if spec.running_var == "biased" else "unbiased",
        "adam_epsilon": adam_epsilon(train),
        "adam_epsilon_at": "sqrt(v_hat) + eps",
    }
