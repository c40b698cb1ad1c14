"""Ghost-batch BN and GroupNorm from torch's own normalization ops (:mod:`harness.numerics.ghost`).

Ghost-batch BN views the ``(N, C)`` batch as ``(g, N/g * C)``: column ``j * C + c`` holds unit
``c`` of virtual batch ``j``, so one ``F.batch_norm`` call in training mode normalizes every
virtual batch by its own statistics, with the shared ``weight``/``bias`` repeated per virtual
batch (autograd sums their gradients back). Its running buffers, handed in with momentum 1,
come back holding each virtual batch's mean and unbiased variance (torch's rule); the stated
rule averages them over the virtual batches and applies the layer's momentum. Eval mode is
``nn.BatchNorm1d``'s own. GroupNorm is ``nn.GroupNorm``, which takes ``(N, C)`` input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.backend import BNResult, NormCall


class GhostBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose training mode normalizes virtual batches of ``ghost_batch``."""

    def __init__(self, width: int, ghost_batch: int, momentum: float, eps: float) -> None:
        super().__init__(width, momentum=momentum, eps=eps)
        self.ghost_batch = ghost_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Ghost batches in training mode, the running statistics in eval mode."""
        if not self.training:
            return super().forward(x)
        n, c, g = x.shape[0], x.shape[1], self.ghost_batch
        if g < 2 or n % g:
            raise ValueError(f"ghost batch {g} must be at least 2 and divide the batch of {n}")
        k = n // g
        view = x.reshape(k, g, c).transpose(0, 1).reshape(g, k * c)
        means = torch.zeros(k * c, dtype=x.dtype, device=x.device)
        variances = torch.ones(k * c, dtype=x.dtype, device=x.device)
        out = F.batch_norm(
            view, means, variances, self.weight.repeat(k), self.bias.repeat(k), True, 1.0, self.eps
        )
        with torch.no_grad():
            m = float(self.momentum)  # type: ignore[arg-type]
            self.running_mean.mul_(1 - m).add_(means.view(k, c).mean(0), alpha=m)
            self.running_var.mul_(1 - m).add_(variances.view(k, c).mean(0), alpha=m)
            self.num_batches_tracked.add_(1)
        return out.reshape(g, k, c).transpose(0, 1).reshape(n, c)


def make_norm(
    kind: str, width: int, groups: int, ghost: int, momentum: float, eps: float
) -> nn.Module:
    """The torch layer for ``kind`` (``groupnorm`` or ``ghost-batch``) on ``width`` units."""
    if kind == "groupnorm":
        if width % groups:
            raise ValueError(f"{groups} groups must divide the {width} units")
        return nn.GroupNorm(groups, width, eps=eps)
    return GhostBatchNorm1d(width, ghost, momentum, eps)


def norm_apply(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    call: NormCall,
    upstream: np.ndarray,
    device: torch.device,
) -> BNResult:
    """One float32 forward/backward of the layer the MLP uses, on ``device``."""
    layer = make_norm(
        call.kind, x.shape[1], call.groups, call.ghost_batch, call.momentum, call.epsilon
    ).to(device)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(params["scale"]))
        layer.bias.copy_(torch.as_tensor(params["offset"]))
        if isinstance(layer, GhostBatchNorm1d):
            layer.running_mean.copy_(torch.as_tensor(params["mean"]))
            layer.running_var.copy_(torch.as_tensor(params["var"]))
    layer.train(call.training)
    xt = torch.tensor(x, dtype=torch.float32, device=device, requires_grad=True)
    out = layer(xt)
    (out * torch.as_tensor(upstream, dtype=torch.float32, device=device)).sum().backward()

    def host(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.detach().cpu().numpy().copy()

    stats = [np.zeros(0, np.float32)] * 2
    if isinstance(layer, GhostBatchNorm1d):
        stats = [host(layer.running_mean), host(layer.running_var)]  # type: ignore[list-item]
    grads = (host(xt.grad), host(layer.weight.grad), host(layer.bias.grad))
    return BNResult(host(out), *grads, *stats)  # type: ignore[arg-type]
