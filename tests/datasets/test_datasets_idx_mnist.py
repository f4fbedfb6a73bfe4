import gzip
import hashlib
import io
import os
import shutil
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from skcl.datasets import _mnist, fetch_mnist, load_idx

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
NAMES = [name for name, _ in _mnist._FILES.values()]
needs_mnist = pytest.mark.skipif(
    not all((SHARED_MNIST / name).is_file() for name in NAMES),
    reason="MNIST IDX files not found in ../shared/data/mnist",
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, timeout=None):
        raise AssertionError(f"tests must not use the network ({url})")

    monkeypatch.setattr(_mnist, "urlopen", refuse)


def _idx_bytes(array):
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    kind = array.dtype.kind + str(array.dtype.itemsize)
    header = bytes([0, 0, codes[kind], array.ndim])
    header += np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
    content = _idx_bytes(array)
    path = tmp_path / "data-idx3"
    path.write_bytes(gzip.compress(content) if compress else content)
    loaded = load_idx(path)
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x01\x00\x08\x01", "bad magic number"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX data type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "incomplete IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "holds 10 bytes"),
        (b"\x1f\x8bnot gzip", "not a valid gzip file"),
    ],
)
def test_load_idx_rejects_bad_files(tmp_path, content, match):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_idx(path)


@pytest.fixture(scope="module")
def mnist():
    return fetch_mnist(SHARED_MNIST, download_if_missing=False, cache=False)


@needs_mnist
def test_fetch_mnist_shared_data(mnist):
    assert mnist.X_train.shape == (60000, 784) and mnist.X_test.shape == (10000, 784)
    assert mnist.X_train.dtype == mnist.X_test.dtype == np.float32
    assert mnist.X_train.min() == 0 and mnist.X_train.max() == 1
    assert mnist.image_shape == (28, 28)
    np.testing.assert_array_equal(
        np.bincount(mnist.y_train),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    )
    np.testing.assert_array_equal(
        np.bincount(mnist.y_test),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    )
    assert mnist.y_train.dtype == np.int64
    labels = load_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(mnist.y_test, labels)


@needs_mnist
def test_fetch_mnist_subfolder_cache_and_return_X_y(tmp_path, mnist):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(SHARED_MNIST / name, folder / name)
    fetch_mnist(tmp_path, download_if_missing=False)
    assert (folder / "mnist.npz").is_file()
    for name in NAMES:
        (folder / name).unlink()
    arrays = fetch_mnist(tmp_path, download_if_missing=False, return_X_y=True)
    expected = (mnist.X_train, mnist.X_test, mnist.y_train, mnist.y_test)
    for got, want in zip(arrays, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def fake_mnist(monkeypatch):
    """Tiny stand-ins for the four files, with their checksums registered."""
    rng = np.random.RandomState(0)
    arrays = {
        "X_train": rng.randint(0, 256, (3, 28, 28)).astype(np.uint8),
        "y_train": np.array([1, 0, 7], dtype=np.uint8),
        "X_test": rng.randint(0, 256, (2, 28, 28)).astype(np.uint8),
        "y_test": np.array([9, 4], dtype=np.uint8),
    }
    files, contents = {}, {}
    for key, array in arrays.items():
        name = _mnist._FILES[key][0]
        content = _idx_bytes(array)
        files[key] = (name, hashlib.md5(content).hexdigest())
        contents[name] = gzip.compress(content)
    monkeypatch.setattr(_mnist, "_FILES", files)
    return arrays, contents


def test_fetch_mnist_reads_uncompressed_files_and_scales(tmp_path, fake_mnist):
    arrays, contents = fake_mnist
    for name, content in contents.items():
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress(content))
    data = fetch_mnist(tmp_path, download_if_missing=False, cache=False)
    np.testing.assert_allclose(data.X_train, arrays["X_train"].reshape(3, -1) / 255)
    assert data.y_test.tolist() == [9, 4]
    assert not (tmp_path / "mnist.npz").exists()
    fetch_mnist(tmp_path, download_if_missing=False)
    assert (tmp_path / "mnist.npz").is_file()


def test_fetch_mnist_downloads_missing_files(tmp_path, monkeypatch, fake_mnist):
    _, contents = fake_mnist
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        if url.startswith(_mnist._MIRRORS[0]):
            raise URLError("mirror down")
        return io.BytesIO(contents[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(_mnist, "urlopen", fake_urlopen)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / NAMES[1]).write_bytes(contents[NAMES[1]])
    data = fetch_mnist(tmp_path)
    assert len(requested) == 6
    assert all(url.startswith(_mnist._MIRRORS[:2]) for url in requested)
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted([*NAMES, "mnist.npz"])
    assert data.y_train.tolist() == [1, 0, 7]


def test_fetch_mnist_download_failure_lists_mirrors(tmp_path, monkeypatch, fake_mnist):
    def corrupt(url, timeout=None):
        return io.BytesIO(gzip.compress(b"garbage"))

    monkeypatch.setattr(_mnist, "urlopen", corrupt)
    with pytest.raises(OSError, match="Could not download") as info:
        fetch_mnist(tmp_path)
    assert all(mirror in str(info.value) for mirror in _mnist._MIRRORS)
    assert "Checksum mismatch" in str(info.value)
    assert not (tmp_path / "mnist").exists()


def test_fetch_mnist_checksum_mismatch(tmp_path):
    for name in NAMES:
        (tmp_path / name).write_bytes(gzip.compress(_idx_bytes(np.zeros(2, np.uint8))))
    with pytest.raises(ValueError, match=r"Checksum mismatch for .*train-images"):
        fetch_mnist(tmp_path, download_if_missing=False)


def test_fetch_mnist_missing_files_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SKCL_DATA", str(tmp_path))
    (tmp_path / NAMES[0]).write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        fetch_mnist(download_if_missing=False)
    message = str(info.value)
    assert str(tmp_path) in message and str(tmp_path / "mnist") in message
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert f"not found: {NAMES[0]}" not in message
    assert "data_home" in message
