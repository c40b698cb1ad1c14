"""Streaming checks of dataset files against :data:`harness.data.checksums.CHECKSUMS`.

A file is read once, in chunks, hashed on the way and never past the most bytes a good copy can
have; a ``.gz`` is decompressed in chunks too, its payload never past the official size. Only
bytes that passed are returned for parsing, so nothing is parsed, and no file is read beyond its
bound, before its digest matches.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path
from typing import BinaryIO

from harness.data.checksums import CHECKSUMS, Checksums, Known, expected
from harness.errors import HarnessError

CHUNK = 1 << 20
DEFLATE_MAX_RATIO = 1032
"""Deflate's largest expansion: the payload bound when only a ``.gz``'s own digest is known."""
HINT = "the file is damaged or not the official one (delete it and download it again)"


class Tap:
    """A read-only stream over ``f`` that hashes what it passes and refuses more than ``cap``."""

    def __init__(self, f: BinaryIO, algorithm: str, cap: int, origin: Path | str) -> None:
        self.f, self.cap, self.origin = f, cap, origin
        self.hash = hashlib.new(algorithm)
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes (all that is left when negative), never more than ``cap + 1``."""
        room = self.cap + 1 - self.count
        data = self.f.read(room if size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.cap:
            raise HarnessError(
                f"{self.origin} is larger than the {self.cap:,} bytes the official file can be; "
                f"stopped reading it; {HINT}"
            )
        self.hash.update(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        """Refused: a checked stream is read once, front to back (gzip never seeks to read)."""
        raise OSError("a checked stream cannot seek")

    def drain(self, keep: bool) -> bytes:
        """Read to the end (or the cap) in chunks; the bytes when ``keep``, else ``b''``."""
        parts = []
        while chunk := self.read(CHUNK):
            if keep:
                parts.append(chunk)
        return b"".join(parts)


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror or exc}") from None


def _mismatch(path: Path | str, want: str, got: str) -> HarnessError:
    return HarnessError(f"checksum mismatch for {path}: expected {want}, got {got}; {HINT}")


def read_verified(
    path: Path,
    dataset: str,
    name: str = "",
    checksums: Checksums | None = None,
    keep: bool = True,
    origin: str = "",
) -> bytes:
    """The bytes of ``path`` once they match ``(dataset, name)`` (default name: ``path.name``).

    Read in chunks, never past the known size; ``keep=False`` only checks (returns ``b''``).
    Errors name ``origin`` (default: ``path``), e.g. the URL a temporary file came from.
    """
    known = expected(dataset, name or path.name, checksums)
    where = origin or path
    with _open(path) as f:
        tap = Tap(f, known.algorithm, known.size, where)
        try:
            data = tap.drain(keep)
        except OSError as exc:
            raise HarnessError(f"cannot read {path}: {exc.strerror or exc}") from None
    got = tap.hash.hexdigest()
    if got != known.digest or tap.count != known.size:
        want = f"{known.algorithm} {known.digest} ({known.size:,} bytes)"
        raise _mismatch(where, want, f"{got} ({tap.count:,} bytes)")
    return data


def gzip_limits(dataset: str, name: str, checksums: Checksums | None = None) -> tuple[int, int]:
    """The most bytes a good ``.gz`` ``name`` and its payload can have: ``(packed, payload)``."""
    table = CHECKSUMS if checksums is None else checksums
    packed, inner = table.get((dataset, name)), table.get((dataset, name.removesuffix(".gz")))
    if inner is None:
        packed = expected(dataset, name, checksums)  # raises when nothing is known of it
        return packed.size, packed.size * DEFLATE_MAX_RATIO
    bound = inner.size + inner.size // 64 + 65_536  # stored deflate blocks, gzip headers
    return max(bound, packed.size if packed else 0), inner.size


def _gunzip(tap: Tap, cap: int, algorithm: str, keep: bool) -> tuple[bytes, str, int, str]:
    """Decompress ``tap`` in chunks up to ``cap`` bytes: ``(payload, digest, size, problem)``."""
    digest, parts, size = hashlib.new(algorithm), [], 0
    try:
        with gzip.GzipFile(fileobj=tap, mode="rb") as stream:
            while piece := stream.read(min(CHUNK, cap + 1 - size)):
                size += len(piece)
                if size > cap:
                    return b"", "", size, f"its contents exceed the official {cap:,} bytes"
                digest.update(piece)
                if keep:
                    parts.append(piece)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return b"", "", size, f"its gzip data is truncated or corrupt ({exc})"
    return b"".join(parts), digest.hexdigest(), size, ""


def read_gzip_verified(
    path: Path,
    dataset: str,
    name: str = "",
    checksums: Checksums | None = None,
    keep: bool = True,
    origin: str = "",
) -> bytes:
    """The decompressed payload of ``path`` once the ``.gz`` or its payload matches the table.

    Accepted when the file's own digest is that of ``(dataset, name)`` (default name:
    ``path.name``) or when its payload has the known digest and size of the name without
    ``.gz``. Compressed input and payload are each read in chunks, never past their bound.
    Errors name ``origin`` (default: ``path``).
    """
    table = CHECKSUMS if checksums is None else checksums
    name, where = name or path.name, origin or path
    packed, inner = table.get((dataset, name)), table.get((dataset, name.removesuffix(".gz")))
    packed_cap, payload_cap = gzip_limits(dataset, name, checksums)
    with _open(path) as f:
        tap = Tap(f, packed.algorithm if packed else "md5", packed_cap, where)
        try:
            algorithm = inner.algorithm if inner else "md5"
            payload, got, size, problem = _gunzip(tap, payload_cap, algorithm, keep)
            tap.drain(keep=False)  # the .gz digest covers every byte, trailing ones too
        except OSError as exc:
            raise HarnessError(f"cannot read {path}: {exc.strerror or exc}") from None
    packed_ok = packed is not None and tap.hash.hexdigest() == packed.digest
    if problem and packed_ok:  # only a trusted override can name a broken .gz
        raise HarnessError(f"{where}: {problem}")
    contents_ok = inner is not None and (got, size) == (inner.digest, inner.size)
    if problem or not (packed_ok or contents_ok):
        found = _got_gz(tap, f"{algorithm} {got}", size, problem)
        raise _mismatch(where, _want_gz(packed, inner), found)
    return payload


def _want_gz(packed: Known | None, inner: Known | None) -> str:
    wants = [f"{packed.algorithm} {packed.digest} (the published .gz)"] if packed else []
    if inner:
        wants.append(f"contents with {inner.algorithm} {inner.digest} ({inner.size:,} bytes)")
    return " or ".join(wants)


def _got_gz(tap: Tap, got: str, size: int, problem: str) -> str:
    packed = f"{tap.hash.name} {tap.hash.hexdigest()} ({tap.count:,} bytes)"
    return f"{packed}, {problem}" if problem else f"{packed} with contents {got} ({size:,} bytes)"


def verify_file(
    path: Path,
    dataset: str,
    name: str = "",
    checksums: Checksums | None = None,
    origin: str = "",
) -> None:
    """Raise :class:`HarnessError` naming ``path`` unless it is ``dataset``'s file ``name``.

    ``name`` is the official file name (default: ``path.name``); caches that rename a file, like
    Keras' ``cifar-10-batches-py.tar.gz``, pass the official name. A ``.gz`` whose payload is
    known verifies by either digest, as in :func:`read_gzip_verified`.
    """
    name = name or path.name
    if _payload_known(dataset, name, checksums):
        read_gzip_verified(path, dataset, name, checksums, keep=False, origin=origin)
    else:
        read_verified(path, dataset, name, checksums, keep=False, origin=origin)


def stored_cap(dataset: str, name: str, checksums: Checksums | None = None) -> int:
    """The most bytes a good copy of ``dataset``'s file ``name`` can have on disk."""
    if _payload_known(dataset, name, checksums):
        return gzip_limits(dataset, name, checksums)[0]
    return expected(dataset, name, checksums).size


def _payload_known(dataset: str, name: str, checksums: Checksums | None) -> bool:
    table = CHECKSUMS if checksums is None else checksums
    return name.endswith(".gz") and (dataset, name.removesuffix(".gz")) in table
