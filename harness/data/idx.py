"""The IDX file format of MNIST: a big-endian header, then the array.

Header: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float,
0x0E double), the number of dimensions, then each dimension as a big-endian uint32. The data
follows in C order, big-endian. Files may be gzipped (``.gz``) as distributed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from harness.data.checksums import Checksums
from harness.data.verify import read_gzip_verified, read_verified
from harness.errors import HarnessError

IDX_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def parse_idx(data: bytes, origin: Path | str) -> np.ndarray:
    """Parse an uncompressed IDX file's bytes; any inconsistency names ``origin``."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise HarnessError(f"{origin}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise HarnessError(f"{origin}: unknown IDX data type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise HarnessError(f"{origin}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[code])
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != want:
        state = "truncated" if got < want else "has trailing bytes"
        raise HarnessError(
            f"{origin}: IDX file {state} ({got} data bytes, dims {dims} need {want})"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path, dataset: str, checksums: Checksums | None = None) -> np.ndarray:
    """Read ``dataset``'s IDX file (gzipped when the name ends in ``.gz``), verified first.

    The checksum check streams the file (see :mod:`harness.data.checksums`); only bytes that
    passed it are parsed.
    """
    if path.suffix == ".gz":
        return parse_idx(read_gzip_verified(path, dataset, checksums=checksums), path)
    return parse_idx(read_verified(path, dataset, checksums=checksums), path)
