"""PyTorch, the tutorial way: ``DataLoader(TensorDataset)`` with ``shuffle=True`` and
``loss.item()`` every step for the running loss, as the official "Training a classifier"
tutorial does.

Same MLP and optimizer as :mod:`torch_expert`; the last partial batch is kept (the
``DataLoader`` default), so an epoch sees every sample.

    python baselines/torch_tutorial.py --batch-size 128 --epochs 3 --bn
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

HIDDEN = (512, 256)
DROP_REMAINDER = False  # the last partial batch is trained on: an epoch is every sample


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
    dataset = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y).long())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def epoch() -> float:
        start = time.perf_counter()
        model.train()
        running_loss = 0.0
        for inputs, labels in loader:
            inputs, labels = inputs.to(dev), labels.to(dev)
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()  # a host sync every step, as tutorials do
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

    main("torch_tutorial", run)
