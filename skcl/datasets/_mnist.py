import contextlib
import gzip
import hashlib
import os
import tempfile
from urllib.request import urlopen

import numpy as np
from sklearn.utils import Bunch

from ._idx import _parse_idx, _read_bytes

_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FILES = {
    "X_train": ("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb"),
    "y_train": ("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624"),
    "X_test": ("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea"),
    "y_test": ("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637"),
}
_CACHE = "mnist.npz"
_DESCR = """MNIST handwritten digits (LeCun, Cortes and Burges).

70,000 grey-scale 28x28 images of the digits 0-9: 60,000 for training
(X_train, y_train) and 10,000 for testing (X_test, y_test). Each image is a
row of 784 float32 pixels in [0, 1] (intensity / 255), row-major; reshape with
image_shape to get the images. Labels are int64.
"""


def _data_home(data_home):
    if data_home is None:
        data_home = os.environ.get("SKCL_DATA") or os.path.join("~", "skcl_data")
    return os.path.abspath(os.path.expanduser(os.fspath(data_home)))


def _find(folders, name):
    for folder in folders:
        for candidate in (name, name.removesuffix(".gz")):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def _check_md5(content, source, md5):
    digest = hashlib.md5(content).hexdigest()
    if digest != md5:
        raise ValueError(
            f"Checksum mismatch for {source}: the md5 of its uncompressed content "
            f"is {digest}, expected {md5}. The file is corrupt or is not the "
            "original MNIST file; delete it and download it again (to read other "
            "MNIST-format data, use skcl.datasets.load_idx)."
        )


def _atomic_write(path, write):
    """Write ``path`` through a temporary file, so readers never see a part."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _download(name, md5, folder):
    errors = []
    for mirror in _MIRRORS:
        url = mirror + name
        try:
            with urlopen(url, timeout=60) as response:
                content = response.read()
            _check_md5(gzip.decompress(content), url, md5)
        except (OSError, EOFError, ValueError) as exc:
            errors.append(f"  {url}: {exc}")
        else:
            break
    else:
        raise OSError(f"Could not download {name}:\n" + "\n".join(errors))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    _atomic_write(path, lambda f: f.write(content))
    return path


def _write_cache(arrays, folders):
    for folder in folders:
        with contextlib.suppress(OSError):
            _atomic_write(os.path.join(folder, _CACHE), lambda f: np.savez(f, **arrays))
            return


def _load_arrays(data_home, download_if_missing, cache):
    folders = [data_home, os.path.join(data_home, "mnist")]
    cache_path = _find(folders, _CACHE) if cache else None
    if cache_path is not None:
        with np.load(cache_path) as npz:
            return {key: npz[key] for key in _FILES}
    paths = {key: _find(folders, name) for key, (name, _) in _FILES.items()}
    missing = [_FILES[key][0] for key, path in paths.items() if path is None]
    if missing and not download_if_missing:
        raise FileNotFoundError(
            f"MNIST files not found: {', '.join(missing)}. Put the four gzipped "
            f"IDX files ({', '.join(name for name, _ in _FILES.values())}) in "
            f"{folders[0]} or {folders[1]}, or pass data_home=<folder with the "
            "files> (the default folder is $SKCL_DATA, else ~/skcl_data), or "
            "allow download_if_missing=True with internet access."
        )
    for key, path in paths.items():
        if path is None:
            paths[key] = _download(*_FILES[key], folders[1])
    arrays = {}
    for key, path in paths.items():
        content = _read_bytes(path)
        _check_md5(content, path, _FILES[key][1])
        arrays[key] = _parse_idx(content, path)
    if cache:
        _write_cache(arrays, [os.path.dirname(paths["X_train"]), data_home])
    return arrays


def fetch_mnist(
    data_home=None, *, download_if_missing=True, cache=True, return_X_y=False
):
    """Load MNIST from its standard IDX files, downloading them if needed.

    =================   ==================================
    Classes             10 (digits 0-9)
    Samples             60,000 train + 10,000 test
    Features            784 (28x28 pixels), float32 in [0, 1]
    =================   ==================================

    The four gzipped IDX files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``; uncompressed copies without ``.gz`` work
    too) are read from ``data_home`` or its ``mnist`` subfolder, and each is
    verified by the md5 checksum of its uncompressed content. A numpy copy,
    ``mnist.npz``, is then cached next to the files (or in ``data_home``; not
    at all if neither is writable) and read instead on later calls (see
    ``cache``). Missing files are downloaded from the canonical
    mirrors into ``data_home/mnist`` when ``download_if_missing`` allows.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder of the data. Default: the environment variable
        ``SKCL_DATA``, else ``~/skcl_data``.
    download_if_missing : bool, default=True
        Whether to download missing files; if False, missing files raise a
        ``FileNotFoundError`` that says where to put them.
    cache : bool, default=True
        Whether to read ``mnist.npz`` when present and write it after reading
        the IDX files. Delete the file, or pass False, to re-read (and
        re-verify) the IDX files; False also leaves the data folder untouched.
    return_X_y : bool, default=False
        Whether to return ``(X_train, X_test, y_train, y_test)`` instead of a
        Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        X_train : ndarray of shape (60000, 784), float32
            Training images, one flattened image per row, pixels in [0, 1].
        X_test : ndarray of shape (10000, 784), float32
            Test images.
        y_train : ndarray of shape (60000,), int64
            Training labels.
        y_test : ndarray of shape (10000,), int64
            Test labels.
        image_shape : tuple
            ``(28, 28)``, to reshape rows into images.
        DESCR : str
            A description of the data set.

    (X_train, X_test, y_train, y_test) : tuple of ndarrays
        If ``return_X_y=True``, in the order of
        :func:`~sklearn.model_selection.train_test_split`.

    Notes
    -----
    The images take 220 MB as float32. Streams built from them multiply that
    by the number of tasks; see the ``dtype`` and ``return_permutations``
    parameters of :func:`make_permuted_stream` to keep it down.

    Examples
    --------
    >>> from skcl.datasets import fetch_mnist
    >>> mnist = fetch_mnist("../shared/data/mnist")  # doctest: +SKIP
    >>> mnist.X_train.shape, mnist.X_test.shape  # doctest: +SKIP
    ((60000, 784), (10000, 784))
    """
    arrays = _load_arrays(_data_home(data_home), download_if_missing, cache)
    data = {
        key: (
            value.reshape(len(value), -1) / np.float32(255)
            if key.startswith("X")
            else value.astype(np.int64)
        )
        for key, value in arrays.items()
    }
    if return_X_y:
        return data["X_train"], data["X_test"], data["y_train"], data["y_test"]
    return Bunch(**data, image_shape=(28, 28), DESCR=_DESCR)
