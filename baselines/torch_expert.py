"""PyTorch, the careful expert's way: tensors on the device once, no per-step host sync.

Eager mode (whether ``torch.compile`` would be faster here is not measured by this project: see
docs/numerics-conventions.md), the data permuted once per epoch on the device and sliced into
contiguous batches, ``zero_grad(set_to_none=True)``, the loss summed on the device and read once
per epoch (that read is the synchronization, so the epoch time includes all device work).
Same MLP as the harness: 784-512-256-10, ReLU, optional BatchNorm before each ReLU (momentum
0.1, epsilon 1e-5), SGD lr 0.01 momentum 0.9; each epoch drops the last partial batch, as the
harness's batch order does.

    python baselines/torch_expert.py --batch-size 128 --epochs 3 --bn
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = (512, 256)


def mlp(inputs: int, classes: int, bn: bool) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> ReLU per hidden layer, then a Linear head."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip((inputs, *HIDDEN[:-1]), HIDDEN):
        layers.append(nn.Linear(fan_in, fan_out))
        if bn:
            layers.append(nn.BatchNorm1d(fan_out, momentum=0.1, eps=1e-5))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(HIDDEN[-1], classes))
    return nn.Sequential(*layers)


def prepare(
    x: np.ndarray, y: np.ndarray, batch_size: int, bn: bool, seed: int = 0, device: str = "cpu"
) -> Callable[[], float]:
    """Build everything once; the returned function trains one epoch and returns its seconds."""
    torch.manual_seed(seed)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = mlp(x.shape[1], int(y.max()) + 1, bn).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = torch.as_tensor(x, dtype=torch.float32, device=dev)
    ys = torch.as_tensor(y, dtype=torch.long, device=dev)
    steps = len(xs) // batch_size
    gen = torch.Generator(device=dev).manual_seed(seed)

    def epoch() -> float:
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xs), device=dev, generator=gen)[: steps * batch_size]
        xp, yp = xs[perm], ys[perm]
        total = torch.zeros((), device=dev)
        for i in range(0, steps * batch_size, batch_size):
            loss = F.cross_entropy(model(xp[i : i + batch_size]), yp[i : i + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        total.item()  # the epoch's one host sync: waits for queued device work
        return time.perf_counter() - start

    return epoch


def run(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    epochs: int,
    bn: bool,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Seconds of each of ``epochs`` epochs (the first includes warm-up)."""
    epoch = prepare(x, y, batch_size, bn, seed, device)
    return [epoch() for _ in range(epochs)]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _cli import main

    main("torch_expert", run)
