import numpy as np
from sklearn.utils import Bunch

from ._archives import open_archive
from ._mnist import _data_home
from ._normalize import channel_stats

_PIXELS = 3 * 32 * 32
_URL = "https://www.cs.toronto.edu/~kriz/"
# name: folder, archive, md5 of the archive, training files, test file, label
# bytes per record and the classes each counts, files of their names.
_CIFAR = {
    "CIFAR-10": (
        "cifar-10-batches-bin",
        "cifar-10-binary.tar.gz",
        "c32a1d4ab5d03f1284b67883e8d87530",
        [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test_batch.bin",
        {"label": 10},
        ("batches.meta.txt",),
    ),
    "CIFAR-100": (
        "cifar-100-binary",
        "cifar-100-binary.tar.gz",
        "03b5dce01913d631647c71ecec9e9cb8",
        ["train.bin"],
        "test.bin",
        {"coarse label": 20, "fine label": 100},
        ("coarse_label_names.txt", "fine_label_names.txt"),
    ),
}


def _records(content, source, name, labels):
    """The labels ``(n, len(labels))`` and images ``(n, 3, 32, 32)`` of a file."""
    size = len(labels) + _PIXELS
    layout = " + ".join(f"1 {label} byte" for label in labels)
    if not content or len(content) % size:
        raise ValueError(
            f"{source} holds {len(content)} bytes, not a whole number of "
            f"{size:,}-byte records ({name} binary: {layout} + 3,072 pixel "
            "bytes): the file is truncated or is not the binary version of "
            f"{name}."
        )
    records = np.frombuffer(content, np.uint8).reshape(-1, size)
    for i, (label, n_classes) in enumerate(labels.items()):
        top = int(records[:, i].max())
        if top >= n_classes:
            raise ValueError(
                f"{source} has a {label} of {top}, beyond {name}'s {n_classes} "
                f"classes: its records are not {name} binary records ({layout} "
                "+ 3,072 pixel bytes)."
            )
    images = records[:, len(labels) :].reshape(-1, 3, 32, 32)
    return records[:, : len(labels)].astype(np.int64), images


def _names(content, source, n_classes):
    names = [line.strip() for line in content.decode().splitlines() if line.strip()]
    if len(names) != n_classes:
        raise ValueError(f"{source} names {len(names)} classes, expected {n_classes}.")
    return np.array(names)


def _load(name, data_home, download_if_missing):
    folder, archive, md5, train, test, labels, names = _CIFAR[name]
    files = open_archive(
        _data_home(data_home),
        folder,
        archive,
        _URL + archive,
        md5,
        download_if_missing,
        f"The {name} binary archive",
    )
    try:
        parts = {
            split: [
                _records(files.read(f), f"{files.where}: {f}", name, labels)
                for f in chosen
            ]
            for split, chosen in (("train", train), ("test", [test]))
        }
        label_names = {
            label: _names(files.read(file), f"{files.where}: {file}", labels[label])
            for label, file in zip(labels, names, strict=True)
        }
    finally:
        files.close()
    data = {}
    for split, chunks in parts.items():
        targets, images = (np.concatenate(a) for a in zip(*chunks, strict=True))
        data[f"X_{split}"] = images
        data[f"y_{split}"] = targets[:, -1].copy()
        if len(labels) > 1:
            data[f"coarse_{split}"] = targets[:, 0].copy()
    return data, label_names


_DESCR = """{name} (Krizhevsky, 2009), its binary version.

60,000 colour 32x32 images of {n_classes} classes: 50,000 for training
(X_train, y_train) and 10,000 for testing (X_test, y_test), as uint8 arrays
of shape (n, 3, 32, 32) (channels red, green, blue). Labels are int64.
"""


def _bunch(name, data, label_names, return_X_y):
    if return_X_y:
        return data["X_train"], data["X_test"], data["y_train"], data["y_test"]
    *coarse, fine = label_names.values()
    extra = {"coarse_names": coarse[0]} if coarse else {}
    return Bunch(
        **data,
        target_names=fine,
        **extra,
        **channel_stats(data["X_train"]),
        DESCR=_DESCR.format(name=name, n_classes=len(fine)),
    )


def fetch_cifar10(data_home=None, *, download_if_missing=True, return_X_y=False):
    """Load CIFAR-10 from its binary archive, downloading it if needed.

    =================   ==================================
    Classes             10
    Samples             50,000 train + 10,000 test
    Features            3x32x32 pixels, uint8
    =================   ==================================

    Reads the official binary version, ``cifar-10-binary.tar.gz`` (in place,
    never extracted, nothing unpickled), or the folder it extracts to,
    ``cifar-10-batches-bin/`` (``data_batch_1.bin`` ... ``data_batch_5.bin``,
    ``test_batch.bin``, ``batches.meta.txt``), in ``data_home``. Each record
    is 1 label byte and 3,072 pixel bytes (the red, green and blue 32x32
    planes, row-major). A file that is missing, that is not a whole number
    of records or whose labels are out of range is refused with its name.
    A missing archive is downloaded from the authors' page (and checked by
    its md5) into ``data_home`` when ``download_if_missing`` allows.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder of the archive. Default: the environment variable
        ``SKCL_DATA``, else ``~/skcl_data``.
    download_if_missing : bool, default=True
        Whether to download the archive (162 MB) when it is missing; if
        False, a ``FileNotFoundError`` says where to put it.
    return_X_y : bool, default=False
        Whether to return ``(X_train, X_test, y_train, y_test)`` instead of a
        Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        X_train : ndarray of shape (50000, 3, 32, 32), uint8
            Training images, channels first (the layout of skcl's modules).
        X_test : ndarray of shape (10000, 3, 32, 32), uint8
            Test images.
        y_train, y_test : ndarray of int64
            Labels in 0-9.
        target_names : ndarray of str
            The classes' names (``airplane``, ``automobile``, ...).
        channel_mean, channel_std : ndarray of shape (3,)
            The training images' per-channel mean and standard deviation of
            ``pixel / 255``, for :func:`normalize_channels`.
        DESCR : str
            A description of the data set.

    (X_train, X_test, y_train, y_test) : tuple of ndarrays
        If ``return_X_y=True``.

    See Also
    --------
    fetch_cifar100, fetch_tiny_imagenet, normalize_channels

    Examples
    --------
    >>> from skcl.datasets import fetch_cifar10
    >>> cifar = fetch_cifar10("~/data")  # doctest: +SKIP
    >>> cifar.X_train.shape, cifar.target_names[:2]  # doctest: +SKIP
    ((50000, 3, 32, 32), array(['airplane', 'automobile'], dtype='<U10'))
    """
    data, names = _load("CIFAR-10", data_home, download_if_missing)
    return _bunch("CIFAR-10", data, names, return_X_y)


def fetch_cifar100(data_home=None, *, download_if_missing=True, return_X_y=False):
    """Load CIFAR-100 from its binary archive, downloading it if needed.

    =================   ==================================
    Classes             100 (fine), in 20 superclasses (coarse)
    Samples             50,000 train + 10,000 test
    Features            3x32x32 pixels, uint8
    =================   ==================================

    Reads the official binary version, ``cifar-100-binary.tar.gz`` (in place,
    never extracted, nothing unpickled), or the folder it extracts to,
    ``cifar-100-binary/`` (``train.bin``, ``test.bin``,
    ``coarse_label_names.txt``, ``fine_label_names.txt``), in ``data_home``.
    Each record is 1 coarse-label byte, 1 fine-label byte and 3,072 pixel
    bytes (the red, green and blue 32x32 planes, row-major). Files are
    checked, and a missing archive downloaded, as :func:`fetch_cifar10`
    does.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder of the archive. Default: the environment variable
        ``SKCL_DATA``, else ``~/skcl_data``.
    download_if_missing : bool, default=True
        Whether to download the archive (161 MB) when it is missing; if
        False, a ``FileNotFoundError`` says where to put it.
    return_X_y : bool, default=False
        Whether to return ``(X_train, X_test, y_train, y_test)`` (fine labels)
        instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        X_train : ndarray of shape (50000, 3, 32, 32), uint8
            Training images, channels first.
        X_test : ndarray of shape (10000, 3, 32, 32), uint8
            Test images.
        y_train, y_test : ndarray of int64
            Fine labels in 0-99 (the classes of Split CIFAR-100).
        coarse_train, coarse_test : ndarray of int64
            Superclass labels in 0-19.
        target_names, coarse_names : ndarray of str
            The names of the 100 classes and of the 20 superclasses.
        channel_mean, channel_std : ndarray of shape (3,)
            The training images' per-channel mean and standard deviation of
            ``pixel / 255``, for :func:`normalize_channels`.
        DESCR : str
            A description of the data set.

    (X_train, X_test, y_train, y_test) : tuple of ndarrays
        If ``return_X_y=True``.

    Examples
    --------
    >>> from skcl.datasets import fetch_cifar100
    >>> cifar = fetch_cifar100("~/data")  # doctest: +SKIP
    >>> cifar.X_train.shape, cifar.coarse_names[0]  # doctest: +SKIP
    ((50000, 3, 32, 32), 'aquatic_mammals')
    """
    data, names = _load("CIFAR-100", data_home, download_if_missing)
    return _bunch("CIFAR-100", data, names, return_X_y)
