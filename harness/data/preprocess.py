"""Shared preprocessing: fixed-seed shuffles and splits, ``limit``, standardization.

The data seed is fixed and independent of the run seed, so every run of a suite (and every
backend) sees the same train/validation samples in the same order.
"""

from __future__ import annotations

import numpy as np

from harness.data import Dataset
from harness.errors import HarnessError
from harness.specs import DataSpec

DATA_SEED = 20240601
"""Seed of every dataset shuffle and split; deliberately not the run seed."""


def permutation(n: int, seed: int = DATA_SEED) -> np.ndarray:
    """A fixed permutation of ``range(n)``."""
    return np.random.default_rng(seed).permutation(n)


def to_unit(x: np.ndarray) -> np.ndarray:
    """uint8 pixels (0-255) as float32 in [0, 1], flattened to ``(n, features)``."""
    out = x.reshape(len(x), -1).astype(np.float32)
    out /= 255.0
    return out


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int = DATA_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and validation indices holding ``val_fraction`` of every class."""
    if not 0.0 < val_fraction < 1.0:
        raise HarnessError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = int(round(len(idx) * val_fraction))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def standardize(
    x_train: np.ndarray, x_val: np.ndarray, channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the training split's mean and divide by its std, per channel.

    Features are channel-major (``channels`` blocks of equal size); ``channels=1`` is global
    standardization. Statistics come from ``x_train`` only.
    """
    blocks = x_train.reshape(len(x_train), channels, -1)
    mean = blocks.mean(axis=(0, 2), dtype=np.float64)
    std = blocks.std(axis=(0, 2), dtype=np.float64)
    std = np.where(std > 0, std, 1.0)

    def apply(x: np.ndarray) -> np.ndarray:
        z = (x.reshape(len(x), channels, -1) - mean[:, None]) / std[:, None]
        return z.reshape(len(x), -1).astype(np.float32)

    return apply(x_train), apply(x_val)


def finish(
    name: str,
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    spec: DataSpec,
    num_classes: int = 10,
    channels: int = 1,
    source: str = "",
) -> Dataset:
    """Build the :class:`Dataset` from shuffled ``(x_train, y_train, x_val, y_val)``.

    ``x`` must already be scaled to [0, 1]. Applies ``spec.limit`` (the first ``limit`` train
    samples and at most as many validation samples), flattens, casts, and standardizes when
    ``spec.standardize`` with statistics of the kept training samples.
    """
    x_train, y_train, x_val, y_val = split
    if spec.limit < 0:
        raise HarnessError(f"limit must be >= 0, got {spec.limit}")
    if spec.limit > 0:
        x_train, y_train = x_train[: spec.limit], y_train[: spec.limit]
        x_val, y_val = x_val[: spec.limit], y_val[: spec.limit]
    x_train = np.ascontiguousarray(x_train.reshape(len(x_train), -1), dtype=np.float32)
    x_val = np.ascontiguousarray(x_val.reshape(len(x_val), -1), dtype=np.float32)
    if spec.standardize:
        x_train, x_val = standardize(x_train, x_val, channels)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=np.asarray(y_train, dtype=np.int64),
        x_val=x_val,
        y_val=np.asarray(y_val, dtype=np.int64),
        num_classes=num_classes,
        source=source,
    )
