"""Input checks shared by the stream builders and loaders."""

import numbers

import numpy as np
from sklearn.utils import _safe_indexing


def _check_int(value, name, *, min_value=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    return int(value)


def _n_samples(X):
    shape = getattr(X, "shape", None)
    if shape is None:
        X = np.asarray(X)
        shape = X.shape
    if len(shape) < 1 or shape[0] == 0:
        raise ValueError(f"X must contain at least one sample, got shape {shape}.")
    return shape[0]


def _check_y(y, n_samples, name="y"):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {y.shape}.")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {y.shape[0]} entries but there are {n_samples} samples; "
            "they must have the same length."
        )
    return y


def _check_array_X_y(X, y, *, X_name="X", ndims=None, expected="(n_samples, ...)"):
    """Numeric array ``X`` (``ndims`` allowed dimensions) and a matching 1-d ``y``."""
    X = np.asarray(X)
    if X.ndim < 2 or (ndims is not None and X.ndim not in ndims):
        raise ValueError(f"{X_name} must have shape {expected}, got shape {X.shape}.")
    if X.shape[0] == 0:
        raise ValueError(f"{X_name} must contain at least one sample.")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{X_name} must be numeric, got dtype {X.dtype}.")
    return X, _check_y(y, X.shape[0])


def _check_dtype(dtype, default):
    try:
        return np.dtype(default if dtype is None else dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a numpy dtype, got {dtype!r}.") from exc


def _take(X, indices):
    """Rows ``indices`` of an array, list or DataFrame (with a fresh index)."""
    rows = _safe_indexing(X if hasattr(X, "shape") else np.asarray(X), indices)
    if hasattr(rows, "reset_index"):
        rows = rows.reset_index(drop=True)
    return rows
