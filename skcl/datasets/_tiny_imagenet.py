import io
import os

import numpy as np
from sklearn.utils import Bunch

from ._archives import open_archive
from ._mnist import _atomic_write, _data_home
from ._normalize import channel_stats

_FOLDER = "tiny-imagenet-200"
_ARCHIVE = "tiny-imagenet-200.zip"
_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
_CACHE = "tiny-imagenet-200.npz"
_DESCR = """Tiny ImageNet (Stanford CS231N, 2015).

110,000 colour 64x64 images of 200 ImageNet classes: 500 per class for
training (X_train, y_train) and the 10,000 labelled validation images, 50 per
class, for testing (X_test, y_test), as uint8 arrays of shape (n, 3, 64, 64).
Labels are int64, the index of the class's WordNet id in sorted order.
"""


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "fetch_tiny_imagenet decodes the archive's JPEG images with Pillow: "
            "pip install Pillow (or pip install skcl[images])."
        ) from None
    return Image


def _decode(files, names):
    """The images ``(n, 3, 64, 64)`` of the JPEG files ``names``."""
    Image = _pillow()
    images = np.empty((len(names), 3, 64, 64), np.uint8)
    for i, name in enumerate(names):
        content = files.read(name)
        try:
            with Image.open(io.BytesIO(content)) as image:
                pixels = np.asarray(image.convert("RGB"))
        except OSError as exc:  # Pillow's UnidentifiedImageError too
            raise ValueError(f"{files.where}: {name} is not an image: {exc}") from exc
        if pixels.shape != (64, 64, 3):
            raise ValueError(
                f"{files.where}: {name} is {pixels.shape[1]}x{pixels.shape[0]} "
                "pixels; Tiny ImageNet's images are 64x64."
            )
        images[i] = pixels.transpose(2, 0, 1)
    return images


def _lines(files, name):
    return [line.split("\t") for line in files.read(name).decode().splitlines() if line]


def _read(files):
    wnids = sorted(line[0].strip() for line in _lines(files, "wnids.txt"))
    words = {line[0]: line[1].strip() for line in _lines(files, "words.txt")}
    unnamed = [w for w in wnids if w not in words]
    if unnamed:
        raise ValueError(f"{files.where}: words.txt does not name {unnamed[:5]}.")
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train = [
        (f"train/{wnid}/images/{name}", index[wnid])
        for wnid in wnids
        for name in files.names(f"train/{wnid}/images")
    ]
    annotations = _lines(files, "val/val_annotations.txt")
    unknown = {line[1] for line in annotations if line[1] not in index}
    if unknown or any(len(line) < 2 for line in annotations):
        raise ValueError(
            f"{files.where}: val/val_annotations.txt names classes not in "
            f"wnids.txt ({sorted(unknown)[:5]}) or has lines without a class."
        )
    test = [(f"val/images/{line[0]}", index[line[1]]) for line in annotations]
    arrays = {}
    for split, rows in (("train", train), ("test", test)):
        names, labels = zip(*rows, strict=True) if rows else ((), ())
        arrays[f"X_{split}"] = _decode(files, names)
        arrays[f"y_{split}"] = np.array(labels, dtype=np.int64)
    arrays["target_names"] = np.array([words[w] for w in wnids])
    arrays["wnids"] = np.array(wnids)
    return arrays


def fetch_tiny_imagenet(
    data_home=None, *, download_if_missing=True, cache=True, return_X_y=False
):
    """Load Tiny ImageNet from its archive of JPEG images, downloading it if needed.

    =================   ==================================
    Classes             200
    Samples             100,000 train + 10,000 validation (the test split)
    Features            3x64x64 pixels, uint8
    =================   ==================================

    Reads the official archive, ``tiny-imagenet-200.zip`` (in place, never
    extracted), or the folder it extracts to, ``tiny-imagenet-200/``, in
    ``data_home``: the classes' WordNet ids in ``wnids.txt`` and their names
    in ``words.txt``, the training images in ``train/<wnid>/images/``, the
    validation images in ``val/images/`` labelled by
    ``val/val_annotations.txt`` (the unlabelled ``test/`` folder is not
    read). The JPEG images are decoded with Pillow, an optional dependency
    (``pip install skcl[images]``); greyscale ones become three equal
    channels. A missing file, an image that is not a 64x64 JPEG and a class
    that ``wnids.txt`` does not list are refused with the file's name.
    Decoding takes a minute or two, so a numpy copy, ``tiny-imagenet-200.npz``,
    is cached in ``data_home`` and read instead on later calls (see
    ``cache``). A missing archive is downloaded from the CS231N page (and
    checked by its md5) when ``download_if_missing`` allows.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder of the archive. Default: the environment variable
        ``SKCL_DATA``, else ``~/skcl_data``.
    download_if_missing : bool, default=True
        Whether to download the archive (237 MB) when it is missing; if
        False, a ``FileNotFoundError`` says where to put it.
    cache : bool, default=True
        Whether to read ``tiny-imagenet-200.npz`` when present and write it
        after decoding the images. Delete the file, or pass False, to decode
        them again; False also leaves the data folder untouched.
    return_X_y : bool, default=False
        Whether to return ``(X_train, X_test, y_train, y_test)`` instead of a
        Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        X_train : ndarray of shape (100000, 3, 64, 64), uint8
            Training images, channels first, class after class.
        X_test : ndarray of shape (10000, 3, 64, 64), uint8
            The validation images, in the order of ``val_annotations.txt``.
        y_train, y_test : ndarray of int64
            Labels in 0-199: the index of the class's WordNet id in sorted
            order (as torchvision's ``ImageFolder`` numbers the folders).
        wnids : ndarray of str
            The WordNet ids, sorted: ``wnids[label]``.
        target_names : ndarray of str
            The classes' names from ``words.txt``.
        channel_mean, channel_std : ndarray of shape (3,)
            The training images' per-channel mean and standard deviation of
            ``pixel / 255``, for :func:`normalize_channels`.
        DESCR : str
            A description of the data set.

    (X_train, X_test, y_train, y_test) : tuple of ndarrays
        If ``return_X_y=True``.

    Examples
    --------
    >>> from skcl.datasets import fetch_tiny_imagenet
    >>> tiny = fetch_tiny_imagenet("~/data")  # doctest: +SKIP
    >>> tiny.X_train.shape, tiny.X_test.shape  # doctest: +SKIP
    ((100000, 3, 64, 64), (10000, 3, 64, 64))
    """
    data_home = _data_home(data_home)
    cache_path = os.path.join(data_home, _CACHE)
    if cache and os.path.isfile(cache_path):
        with np.load(cache_path) as npz:
            arrays = dict(npz)
    else:
        files = open_archive(
            data_home,
            _FOLDER,
            _ARCHIVE,
            _URL,
            _MD5,
            download_if_missing,
            "The Tiny ImageNet archive",
        )
        try:
            arrays = _read(files)
        finally:
            files.close()
        if cache:
            try:
                _atomic_write(cache_path, lambda f: np.savez(f, **arrays))
            except OSError:
                pass  # a read-only data folder: decode again next time
    if return_X_y:
        return arrays["X_train"], arrays["X_test"], arrays["y_train"], arrays["y_test"]
    return Bunch(**arrays, **channel_stats(arrays["X_train"]), DESCR=_DESCR)
