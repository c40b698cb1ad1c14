"""Small datasets for fast runs and tests: scikit-learn's ``digits`` and seeded ``synthetic``."""

from __future__ import annotations

import numpy as np

from harness.data import Dataset
from harness.data.preprocess import DATA_SEED, finish, stratified_split
from harness.specs import DataSpec

SYNTHETIC_CLASSES = 10
SYNTHETIC_FEATURES = 64
SYNTHETIC_SAMPLES = 2000
SYNTHETIC_NOISE = 2.0


def load_digits(spec: DataSpec) -> Dataset:
    """``digits``: scikit-learn's 1,797 8x8 digits, 64 features scaled by 1/16, stratified split."""
    from sklearn.datasets import load_digits as sklearn_digits  # slow import, only when used

    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    train, val = stratified_split(y, spec.val_fraction)
    return finish("digits", (x[train], y[train], x[val], y[val]), spec, source="sklearn")


def make_blobs(seed: int = DATA_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Balanced Gaussian blobs around random class centres, scaled to [0, 1] (deterministic)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (SYNTHETIC_CLASSES, SYNTHETIC_FEATURES))
    y = np.arange(SYNTHETIC_SAMPLES) % SYNTHETIC_CLASSES
    x = centres[y] + rng.normal(0.0, SYNTHETIC_NOISE, (SYNTHETIC_SAMPLES, SYNTHETIC_FEATURES))
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float32), y.astype(np.int64)


def load_synthetic(spec: DataSpec) -> Dataset:
    """``synthetic``: 2,000 samples of 64 features in 10 seeded Gaussian blobs, stratified split."""
    x, y = make_blobs()
    train, val = stratified_split(y, spec.val_fraction)
    return finish("synthetic", (x[train], y[train], x[val], y[val]), spec, source="seeded blobs")
