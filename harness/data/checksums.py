"""Known digests and sizes of the official dataset files: the one table every check uses.

Every file read from disk or downloaded is checked against :data:`CHECKSUMS` before it is parsed
(by :mod:`harness.data.verify`, in one streaming pass that never reads past the known size). The
table is keyed by ``(dataset, file name)``, since MNIST and Fashion-MNIST share their file names.
A ``.gz`` has two rows, the published ``.gz`` and its decompressed payload, and passes by either,
so a re-compressed copy (Debian's Fashion-MNIST) verifies too. The only way around a check is to
pass another ``checksums`` mapping explicitly (tests do, with the digests of the small files they
write); nothing skips a check silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import HarnessError


@dataclass(frozen=True)
class Known:
    """The digest (``algorithm`` a :mod:`hashlib` name) and size in bytes of one official file."""

    algorithm: str
    digest: str
    size: int


Checksums = Mapping[tuple[str, str], Known]
"""``(dataset, file name)`` -> :class:`Known`."""

_IDX = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_SIZES = (47_040_016, 60_008, 7_840_016, 10_008)


def _idx(
    dataset: str, packed: tuple[str, ...], gz_sizes: tuple[int, ...], payload: tuple[str, ...]
) -> dict[tuple[str, str], Known]:
    """Table rows for the four IDX files of ``dataset``: each ``.gz`` and its payload."""
    rows = {}
    for i, name in enumerate(_IDX):
        rows[(dataset, f"{name}.gz")] = Known("md5", packed[i], gz_sizes[i])
        rows[(dataset, name)] = Known("md5", payload[i], _IDX_SIZES[i])
    return rows


CIFAR_BATCHES = {  # md5s from torchvision's CIFAR10 train_list/test_list; sizes as extracted
    "data_batch_1": ("c99cafc152244af753f735de768cd75f", 31_035_704),
    "data_batch_2": ("d4bba439e000b95fd0a9bffe97cbabec", 31_035_320),
    "data_batch_3": ("54ebc095f3ab1f0389bbae665268c751", 31_035_999),
    "data_batch_4": ("634d18415352ddfa80567beed471001a", 31_035_696),
    "data_batch_5": ("482c414d41f54cd18b22e5b47cb7c3cb", 31_035_623),
    "test_batch": ("40351d587109b95175f43aff81a1287e", 31_035_526),
}

CHECKSUMS: dict[tuple[str, str], Known] = {
    # MNIST IDX, the .gz as distributed (md5s from torchvision's MNIST.resources) and the payload.
    **_idx(
        "mnist",
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
        (9_912_422, 28_881, 1_648_877, 4_542),
        (
            "6bbc9ace898e44ae57da46a324031adb",
            "a25bea736e30d166cdddb491f175f624",
            "2646ac647ad5339dbf082846283269ea",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    ),
    # Fashion-MNIST: Zalando's published .gz md5s; payloads measured from Debian's
    # dataset-fashion-mnist, whose re-compressed .gz files have other digests.
    **_idx(
        "fashion-mnist",
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
        (26_421_880, 29_515, 4_422_102, 5_148),
        (
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "9018921c3c673c538a1fc5bad174d6f9",
            "8181f5470baa50b63fa0f6fddb340f0a",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
    ),
    # Keras' copy of MNIST (keras.datasets.mnist.load_data file_hash).
    ("mnist", "mnist.npz"): Known(
        "sha256", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1", 11_490_434
    ),
    # CIFAR-10 python archive (Keras' file_hash; its md5 is c58f30108f718f92721af3b95e74349a).
    ("cifar10", "cifar-10-python.tar.gz"): Known(
        "sha256", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170_498_071
    ),
    **{("cifar10", n): Known("md5", md5, size) for n, (md5, size) in CIFAR_BATCHES.items()},
}


def expected(dataset: str, name: str, checksums: Checksums | None = None) -> Known:
    """What is known of ``dataset``'s file ``name``; an unknown file is an error."""
    table = CHECKSUMS if checksums is None else checksums
    try:
        return table[(dataset, name)]
    except KeyError:
        raise HarnessError(
            f"no known checksum for {dataset} file '{name}'; refusing to read it"
        ) from None
