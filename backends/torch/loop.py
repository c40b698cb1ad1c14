"""The PyTorch training loop: eager steps over tensors preloaded on the device, indexed per step.

The step keeps its metrics on the device (no ``.item()`` per step); the host reads them once per
epoch, after the device has finished, so epoch times include all the device work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.backend import EpochLoop, StepRunner, TrainData
from harness.backends.torch.conventions import adam_epsilon
from harness.backends.torch.model import MLP
from harness.specs import TrainSpec


def optimizer(model: MLP, spec: TrainSpec) -> torch.optim.Optimizer:
    """A fresh ``torch.optim`` SGD or Adam (PyTorch's semantics are the contract's)."""
    if spec.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(),
            lr=spec.lr,
            betas=(spec.adam_beta1, spec.adam_beta2),
            eps=adam_epsilon(spec),
            weight_decay=spec.weight_decay,
        )
    return torch.optim.SGD(
        model.parameters(),
        lr=spec.lr,
        momentum=spec.momentum,
        nesterov=spec.nesterov,
        weight_decay=spec.weight_decay,
    )


def run_epoch(
    model: MLP, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of steps over the index rows of ``order``; per-step losses and correct count,
    both still on the device."""
    model.train()
    steps = order.shape[0]
    losses = torch.zeros(steps, device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for step in range(steps):
        idx = order[step]
        xb, yb = x[idx], y[idx]
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
        correct += (logits.detach().argmax(1) == yb).sum()
    return losses, correct


def _tensors(data: TrainData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(data.x_train, device=device)
    return x, torch.as_tensor(data.y_train, dtype=torch.long, device=device)


def start(
    model: MLP, data: TrainData, spec: TrainSpec, order: np.ndarray, device: torch.device
) -> EpochLoop:
    """The :class:`~harness.backend.EpochLoop` of one ``train`` call: a fresh optimizer, the
    data and the whole batch order on the device."""
    x, y = _tensors(data, device)
    idx_all = torch.as_tensor(order, dtype=torch.long, device=device)
    opt = optimizer(model, spec)

    def run(epoch: int, lr: float) -> tuple[np.ndarray, float]:
        for group in opt.param_groups:
            group["lr"] = lr
        losses, correct = run_epoch(model, opt, x, y, idx_all[epoch])
        return losses.cpu().numpy(), float(correct.item())  # waits for the device

    return EpochLoop(run)


def stepper(
    model: MLP, data: TrainData, spec: TrainSpec, device: torch.device, sync: Callable[[], None]
) -> StepRunner:
    """The loop of ``train`` without its per-epoch metrics (benchmarks)."""
    x, y = _tensors(data, device)
    opt = optimizer(model, spec)

    def run(order: np.ndarray) -> None:
        run_epoch(model, opt, x, y, torch.as_tensor(order, dtype=torch.long, device=device))
        sync()

    return run
