import numpy as np


def channel_stats(X):
    """The per-channel mean and standard deviation of ``X / 255`` (float64),
    of uint8 images ``(n, channels, height, width)``."""
    pixels = X.transpose(1, 0, 2, 3).reshape(X.shape[1], -1) / 255.0
    return {"channel_mean": pixels.mean(1), "channel_std": pixels.std(1)}


def normalize_channels(X, mean, std, *, dtype=np.float32):
    """Scale uint8 images to ``[0, 1]`` and standardize each channel.

    Returns ``(X / 255 - mean[c]) / std[c]`` for every channel ``c``: the
    per-channel normalization of image benchmarks, with the training set's
    statistics (``channel_mean`` and ``channel_std`` of
    :func:`fetch_cifar10`, :func:`fetch_cifar100` and
    :func:`fetch_tiny_imagenet`) for every split.

    Parameters
    ----------
    X : ndarray of shape (n_samples, channels, height, width)
        Images, uint8 (or any values on the 0-255 scale).
    mean, std : array-like of shape (channels,)
        Each channel's mean and standard deviation on the ``[0, 1]`` scale.
    dtype : numpy dtype, default=np.float32
        The dtype of the result.

    Returns
    -------
    X_normalized : ndarray of shape (n_samples, channels, height, width)

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import normalize_channels
    >>> X = np.array([[[[0, 255]], [[51, 102]]]], dtype=np.uint8)  # 1 image, 2 channels
    >>> normalize_channels(X, mean=[0.5, 0.2], std=[0.5, 0.2])
    array([[[[-1.,  1.]],
    <BLANKLINE>
            [[ 0.,  1.]]]], dtype=float32)
    """
    X = np.asarray(X)
    mean, std = (np.asarray(v, dtype=np.float64) for v in (mean, std))
    if X.ndim != 4 or mean.shape != (X.shape[1],) or std.shape != (X.shape[1],):
        raise ValueError(
            "normalize_channels needs images X of shape (n, channels, height, "
            f"width) and one mean and std per channel; got X of shape {X.shape}, "
            f"mean of shape {mean.shape} and std of shape {std.shape}."
        )
    if not np.all(std > 0):
        raise ValueError(f"std must be positive in every channel, got {std}.")
    scale = (1 / (255 * std)).astype(dtype)[:, None, None]
    shift = (mean / std).astype(dtype)[:, None, None]
    return X.astype(dtype) * scale - shift
