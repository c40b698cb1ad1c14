"""CIFAR-10 from ``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py/``.

The batches are Python 2 pickles of dicts with ``b'data'`` (a uint8 ``(10000, 3072)`` array, the
1024 red, then green, then blue pixels of each image) and ``b'labels'`` (a list of ints). A
pickle can run code, so two independent guards stand before any of it is trusted: the archive
(or each batch) must match its official checksum, and the unpickler refuses every global except
the three numpy names an array needs. Train is ``data_batch_1..5``, validation ``test_batch``.
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import Dataset
from harness.data.checksums import Checksums
from harness.data.locate import CIFAR_ARCHIVE, CIFAR_DIR, Found, locate
from harness.data.preprocess import DATA_SEED, finish, permutation, to_unit
from harness.data.verify import read_verified
from harness.errors import HarnessError
from harness.specs import DataSpec

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FEATURES = 3 * 32 * 32
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _reconstruct() -> Any:
    try:  # numpy >= 2 moved it; importing numpy.core there warns
        module = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy 1.x
        module = importlib.import_module("numpy.core.multiarray")
    return module._reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``numpy``'s array-rebuilding names.

    The official batches need exactly ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``
    and ``numpy.dtype``; any other global (``os.system``, ``builtins.eval``...) is refused.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Return one of the allowed numpy objects, or raise :class:`pickle.UnpicklingError`."""
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _unpickle(data: bytes, origin: str) -> Any:
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise HarnessError(f"{origin}: refused to unpickle: {exc}") from None
    except Exception as exc:  # malformed input fails in many ways; all mean "bad file"
        raise HarnessError(
            f"{origin}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})"
        ) from None


def parse_batch(data: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's bytes as uint8 ``(n, 3072)`` images and int64 labels."""
    batch = _unpickle(data, origin)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise HarnessError(f"{origin}: not a CIFAR-10 batch (no b'data'/b'labels')")
    x, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape[1:] != (FEATURES,):
        raise HarnessError(f"{origin}: b'data' is not a uint8 (n, {FEATURES}) array")
    if not isinstance(labels, list) or not all(isinstance(v, int) for v in labels):
        raise HarnessError(f"{origin}: b'labels' is not a list of ints")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise HarnessError(f"{origin}: {len(y)} labels in 0-9 expected for {len(x)} images")
    return x, y


def _tar_members(path: Path, names: tuple[str, ...], checksums: Checksums | None) -> list[bytes]:
    archive = read_verified(path, "cifar10", CIFAR_ARCHIVE, checksums)  # the bytes that passed
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            blobs = []
            for name in names:
                member = tar.extractfile(f"{CIFAR_DIR}/{name}")
                if member is None:
                    raise HarnessError(f"{path}: {CIFAR_DIR}/{name} is not a regular file")
                blobs.append(member.read())
            return blobs
    except KeyError as exc:
        raise HarnessError(f"{path}: archive has no member {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise HarnessError(f"{path}: damaged archive ({exc})") from None


def _dir_members(folder: Path, names: tuple[str, ...], checksums: Checksums | None) -> list[bytes]:
    blobs = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise HarnessError(f"{folder}: {name} is missing")
        blobs.append(read_verified(path, "cifar10", name, checksums))
    return blobs


def read_cifar10(found: Found, checksums: Checksums | None = None) -> Arrays:
    """Raw ``(x_train, y_train, x_test, y_test)`` after checksum and restricted unpickling.

    The archive (or each extracted batch) is checked against ``checksums`` (default: the
    official table) before anything in it is unpickled.
    """
    names = (*TRAIN_BATCHES, TEST_BATCH)
    where = found.paths[0]
    if found.kind == "tar":
        blobs = _tar_members(where, names, checksums)
    else:
        blobs = _dir_members(where, names, checksums)
    parts = [parse_batch(blob, f"{where}/{name}") for name, blob in zip(names, blobs, strict=True)]
    x_train = np.concatenate([x for x, _ in parts[:-1]])
    y_train = np.concatenate([y for _, y in parts[:-1]])
    return x_train, y_train, parts[-1][0], parts[-1][1]


def load_cifar10(spec: DataSpec) -> Dataset:
    """``cifar10``: 50,000 training images, the official 10,000 test images as validation."""
    found = locate("cifar10", spec.data_dir)
    x_train, y_train, x_test, y_test = read_cifar10(found)
    train, val = permutation(len(y_train)), permutation(len(y_test), DATA_SEED + 1)
    split = (to_unit(x_train[train]), y_train[train], to_unit(x_test[val]), y_test[val])
    return finish("cifar10", split, spec, channels=3, source=found.describe())
