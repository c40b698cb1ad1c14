"""Datasets as NumPy arrays; the core's data layer (no framework imports).

Registered through the ``harness_register_datasets`` hook like any plugin's datasets
(:mod:`harness.data.plugin`). :func:`load_dataset` loads a built-in one directly and
:func:`resolve_dataset` applies the default-dataset rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.backend import TrainData
from harness.data.locate import resolve_dataset
from harness.errors import UnknownNameError
from harness.specs import DataSpec

__all__ = ["Dataset", "load_dataset", "resolve_dataset"]


@dataclass
class Dataset:
    """A loaded dataset: flattened float32 features in [0, 1] (or standardized), int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    source: str = ""
    note: str = ""

    @property
    def input_size(self) -> int:
        """Number of features per sample."""
        return int(self.x_train.shape[1])

    def digest(self) -> str:
        """SHA-256 of the arrays every backend trains and validates on (after limit/scaling).

        Names the exact data of a run whatever file or folder it came from (reports show it
        instead of a local path).
        """
        h = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val):
            h.update(str((array.dtype.str, array.shape)).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def info(self) -> dict[str, Any]:
        """The description every task stores as its result's ``dataset`` (one place, one shape)."""
        return {
            "name": self.name,
            "train": len(self.y_train),
            "val": len(self.y_val),
            "source": self.source,
            "note": self.note,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "sha256": self.digest(),
        }

    def train_data(self) -> TrainData:
        """The arrays as the backend contract's :class:`TrainData`."""
        return TrainData(self.x_train, self.y_train, self.x_val, self.y_val)


def load_dataset(spec: DataSpec) -> Dataset:
    """Load built-in dataset ``spec.name`` with its loader (no plugin registry involved)."""
    from harness.data.plugin import BUILTIN_DATASETS  # pluggy only when loading

    for info in BUILTIN_DATASETS:
        if info.name == spec.name:
            dataset: Dataset = info.load(spec)
            return dataset
    raise UnknownNameError("dataset", spec.name, [info.name for info in BUILTIN_DATASETS])
