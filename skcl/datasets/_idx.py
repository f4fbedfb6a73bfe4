import gzip
import os

import numpy as np

_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path):
    """The content of ``path``, decompressed when it is gzipped."""
    with open(path, "rb") as f:
        content = f.read()
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a valid gzip file: {exc}") from exc
    return content


def _parse_idx(content, source):
    if len(content) < 4 or content[:2] != b"\x00\x00":
        raise ValueError(f"{source} is not an IDX file (bad magic number).")
    code, ndim = content[2], content[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{source} has an unknown IDX data type code 0x{code:02X}.")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise ValueError(f"{source} is truncated (incomplete IDX header).")
    shape = tuple(int(n) for n in np.frombuffer(content, ">u4", ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(
            f"{source} holds {len(content)} bytes but its IDX header of shape "
            f"{shape} implies {expected}; the file is truncated or corrupt."
        )
    data = np.frombuffer(content, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def load_idx(path):
    """Read an IDX file, the format of MNIST and of many MNIST-like data sets.

    Parameters
    ----------
    path : str or path-like
        The file, gzipped (detected from its content) or not.

    Returns
    -------
    data : ndarray
        The array stored in the file, with its shape and data type (unsigned
        or signed bytes, int16, int32, float32 or float64) in native byte
        order. MNIST images come as uint8 of shape ``(n, 28, 28)``, labels as
        uint8 of shape ``(n,)``.

    Examples
    --------
    A file of three unsigned bytes (type code 0x08, one dimension of size 3):

    >>> import os, tempfile
    >>> from skcl.datasets import load_idx
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "labels-idx1-ubyte")
    ...     with open(path, "wb") as f:
    ...         _ = f.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
    ...     labels = load_idx(path)
    >>> labels
    array([7, 2, 1], dtype=uint8)
    """
    path = os.fspath(path)
    return _parse_idx(_read_bytes(path), path)
