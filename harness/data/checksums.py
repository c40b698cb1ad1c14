"""Known checksums of the official dataset files, and the checks that use them.

Every file read from disk or downloaded is checked against :data:`CHECKSUMS` before it is parsed.
The only way around a check is to pass another ``checksums`` mapping explicitly (tests do, with
the digests of the small files they write); nothing skips a check silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from harness.errors import HarnessError

Checksums = Mapping[str, tuple[str, str]]
"""File name -> ``(algorithm, hex digest)``, algorithm a :mod:`hashlib` name."""

CHECKSUMS: dict[str, tuple[str, str]] = {
    # MNIST IDX files, gzipped as distributed (md5s from torchvision's MNIST.resources).
    "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    # The same files uncompressed (47,040,016 / 60,008 / 7,840,016 / 10,008 bytes).
    "train-images-idx3-ubyte": ("md5", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("md5", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("md5", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("md5", "27ae3e4e09519cfbb04c329615203637"),
    # Keras' copy (keras.datasets.mnist.load_data file_hash).
    "mnist.npz": ("sha256", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    # CIFAR-10 python archive (Keras' file_hash; its md5 is c58f30108f718f92721af3b95e74349a).
    "cifar-10-python.tar.gz": (
        "sha256",
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    ),
    # Extracted CIFAR-10 batches (md5s from torchvision's CIFAR10 train_list/test_list).
    "data_batch_1": ("md5", "c99cafc152244af753f735de768cd75f"),
    "data_batch_2": ("md5", "d4bba439e000b95fd0a9bffe97cbabec"),
    "data_batch_3": ("md5", "54ebc095f3ab1f0389bbae665268c751"),
    "data_batch_4": ("md5", "634d18415352ddfa80567beed471001a"),
    "data_batch_5": ("md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    "test_batch": ("md5", "40351d587109b95175f43aff81a1287e"),
}


def expected(key: str, checksums: Checksums | None = None) -> tuple[str, str]:
    """The ``(algorithm, digest)`` known for file ``key``; an unknown file is an error."""
    table = CHECKSUMS if checksums is None else checksums
    try:
        return table[key]
    except KeyError:
        raise HarnessError(f"no known checksum for '{key}'; refusing to read it") from None


def digest_file(path: Path, algorithm: str) -> str:
    """Hex digest of the file at ``path``, read in chunks (archives are large)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_digest(
    actual: str, key: str, origin: Path | str, checksums: Checksums | None = None
) -> None:
    """Raise :class:`HarnessError` naming ``origin`` and the expected digest on a mismatch."""
    algorithm, want = expected(key, checksums)
    if actual != want:
        raise HarnessError(
            f"checksum mismatch for {origin}: expected {algorithm} {want}, got {actual}; "
            "the file is damaged or not the official one (delete it and download it again)"
        )


def verify_bytes(
    data: bytes, key: str, origin: Path | str, checksums: Checksums | None = None
) -> None:
    """Raise :class:`HarnessError` naming ``origin`` unless ``data`` has the digest of ``key``."""
    algorithm = expected(key, checksums)[0]
    check_digest(hashlib.new(algorithm, data).hexdigest(), key, origin, checksums)


def verify_file(path: Path, key: str | None = None, checksums: Checksums | None = None) -> None:
    """Raise :class:`HarnessError` naming ``path`` unless it has the digest of ``key``.

    ``key`` is the official file name the table knows (default: ``path.name``); caches that
    rename a file, like Keras' ``cifar-10-batches-py.tar.gz``, pass the official name.
    """
    key = key or path.name
    algorithm = expected(key, checksums)[0]
    check_digest(digest_file(path, algorithm), key, path, checksums)
