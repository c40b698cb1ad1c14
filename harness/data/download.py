"""Download the official MNIST and CIFAR-10 files, verified, written atomically.

Each file is streamed to a temporary name next to its target, its digest computed on the way,
and renamed into place only when the digest matches :data:`harness.data.checksums.CHECKSUMS`;
a bad copy from one mirror is discarded and the next mirror tried.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from harness.data.checksums import Checksums, check_digest, expected, verify_file
from harness.data.locate import CIFAR_ARCHIVE, MNIST_IDX, default_download_dir
from harness.errors import HarnessError, UnknownNameError

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}
FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(f"{name}.gz" for name in MNIST_IDX),
    "cifar10": (CIFAR_ARCHIVE,),
}
USER_AGENT = "bn-harness (dataset download)"


def _stream(url: str, tmp: Path, algorithm: str, timeout: float) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.new(algorithm)
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _fetch_one(url: str, target: Path, checksums: Checksums | None, timeout: float) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        actual = _stream(url, tmp, expected(target.name, checksums)[0], timeout)
        check_digest(actual, target.name, url, checksums)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _already_there(target: Path, checksums: Checksums | None) -> bool:
    if not target.is_file():
        return False
    try:
        verify_file(target, checksums=checksums)
    except HarnessError:
        return False  # a damaged earlier copy is replaced below
    return True


def fetch(
    file_name: str,
    folder: Path,
    mirrors: Sequence[str],
    checksums: Checksums | None = None,
    timeout: float = 60.0,
) -> Path:
    """Put the verified ``file_name`` in ``folder``, trying each mirror URL prefix in turn."""
    target = folder / file_name
    if _already_there(target, checksums):
        return target
    failures = []
    for base in mirrors:
        url = base if base.endswith("/") else base + "/"
        try:
            _fetch_one(url + file_name, target, checksums, timeout)
            return target
        except (OSError, HarnessError) as exc:  # URLError is an OSError
            failures.append(f"{url + file_name}: {exc}")
    raise HarnessError(f"could not download {file_name}: {'; '.join(failures)}")


def download(
    name: str,
    data_dir: str = "",
    *,
    mirrors: Sequence[str] | None = None,
    checksums: Checksums | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Download dataset ``name``'s official files into ``data_dir`` and return their paths.

    ``data_dir`` defaults to $HARNESS_DATA_DIR or ``~/.cache/harness/datasets`` (both searched
    by the loaders). Every file is verified against ``checksums`` (default: the official table);
    ``mirrors`` replaces the official URL prefixes (tests use ``file://`` URLs).
    """
    if name not in FILES:
        raise UnknownNameError("downloadable dataset", name, FILES)
    folder = Path(data_dir).expanduser() if data_dir else default_download_dir()
    folder.mkdir(parents=True, exist_ok=True)
    urls = MIRRORS[name] if mirrors is None else tuple(mirrors)
    return [fetch(file_name, folder, urls, checksums, timeout) for file_name in FILES[name]]
