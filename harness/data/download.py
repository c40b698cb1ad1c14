"""Download the official MNIST, Fashion-MNIST and CIFAR-10 files, verified, written atomically.

Each file is streamed, never past the most bytes a good copy can have, into a temporary file
created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``, an unpredictable name) next to its
target, so nothing planted there (a symlink, a file) is ever opened or overwritten. It is renamed
into place only once it verifies against :data:`harness.data.checksums.CHECKSUMS`; a bad copy
from one mirror is discarded and the next mirror tried. Fashion-MNIST's files have MNIST's names,
so they go to a ``fashion-mnist/`` folder inside the data directory (where the loaders look).
"""

from __future__ import annotations

import os
import secrets
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from harness.data.checksums import Checksums
from harness.data.locate import CIFAR_ARCHIVE, FASHION_DIR, MNIST_IDX, default_download_dir
from harness.data.verify import CHUNK, Tap, stored_cap, verify_file
from harness.errors import HarnessError, UnknownNameError

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}
FILES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(f"{name}.gz" for name in MNIST_IDX),
    "fashion-mnist": tuple(f"{name}.gz" for name in MNIST_IDX),
    "cifar10": (CIFAR_ARCHIVE,),
}
SUBDIRS: dict[str, str] = {"fashion-mnist": FASHION_DIR}
USER_AGENT = "bn-harness (dataset download)"
TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
TEMP_TRIES = 16


def temp_token() -> str:
    """The random part of a temporary file's name."""
    return secrets.token_hex(8)


def create_temp(target: Path) -> tuple[int, Path]:
    """A new, exclusively created ``.NAME.TOKEN.part`` next to ``target``: ``(fd, path)``.

    A name that exists (a planted symlink included) is never opened: ``O_EXCL`` fails on it and
    another random name is tried.
    """
    for _ in range(TEMP_TRIES):
        tmp = target.with_name(f".{target.name}.{temp_token()}.part")
        try:
            return os.open(tmp, TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise HarnessError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    raise HarnessError(f"cannot create a temporary file in {target.parent}: every name was taken")


def _stream(url: str, out: BinaryIO, cap: int, timeout: float) -> None:
    out.seek(0)
    out.truncate()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        tap = Tap(response, "md5", cap, url)  # stops a response longer than a good file
        while chunk := tap.read(CHUNK):
            out.write(chunk)
    out.flush()


def _already_there(target: Path, dataset: str, checksums: Checksums | None) -> bool:
    if not target.is_file():
        return False
    try:
        verify_file(target, dataset, checksums=checksums)
    except HarnessError:
        return False  # a damaged earlier copy is replaced below
    return True


def _try_mirrors(
    urls: list[str],
    out: BinaryIO,
    tmp: Path,
    dataset: str,
    checksums: Checksums | None,
    timeout: float,
) -> None:
    name = urls[0].rsplit("/", 1)[-1]
    cap, failures = stored_cap(dataset, name, checksums), []
    for url in urls:
        try:
            _stream(url, out, cap, timeout)
            verify_file(tmp, dataset, name, checksums, origin=url)
            return
        except (OSError, HarnessError) as exc:  # URLError is an OSError
            failures.append(f"{url}: {exc}")
    raise HarnessError(f"could not download {name}: {'; '.join(failures)}")


def fetch(
    file_name: str,
    folder: Path,
    mirrors: Sequence[str],
    checksums: Checksums | None = None,
    timeout: float = 60.0,
    dataset: str = "mnist",
) -> Path:
    """Put ``dataset``'s verified ``file_name`` in ``folder``, trying each mirror URL prefix."""
    target = folder / file_name
    if _already_there(target, dataset, checksums):
        return target
    urls = [(base if base.endswith("/") else base + "/") + file_name for base in mirrors]
    fd, tmp = create_temp(target)
    try:
        with os.fdopen(fd, "wb") as out:
            _try_mirrors(urls, out, tmp, dataset, checksums, timeout)
        os.replace(tmp, target)  # a symlink at target is replaced, never followed
    except OSError as exc:
        raise HarnessError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def prepare_folder(folder: Path) -> Path:
    """Create ``folder`` if needed; a file there, or a folder that can't be made, is an error."""
    if folder.exists() and not folder.is_dir():
        raise HarnessError(f"data directory {folder} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create data directory {folder}: {exc.strerror or exc}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise HarnessError(f"data directory {folder} is not writable")
    return folder


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
    by the loaders); Fashion-MNIST goes to its ``fashion-mnist/`` folder there. Every file is
    verified against ``checksums`` (default: the official table); ``mirrors`` replaces the
    official URL prefixes (tests use ``file://`` URLs).
    """
    if name not in FILES:
        raise UnknownNameError("downloadable dataset", name, FILES)
    base = Path(data_dir).expanduser() if data_dir else default_download_dir()
    folder = prepare_folder(base)
    if name in SUBDIRS:
        folder = prepare_folder(folder / SUBDIRS[name])
    urls = MIRRORS[name] if mirrors is None else tuple(mirrors)
    return [fetch(file, folder, urls, checksums, timeout, name) for file in FILES[name]]
