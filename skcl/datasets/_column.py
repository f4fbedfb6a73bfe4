import numpy as np

from ._validation import _check_int, _check_y, _n_samples, _take


def _column_values(X, column, n_samples):
    """The per-row task values and the column to drop from ``X`` (or None)."""
    if np.ndim(column) > 0:
        values = column if hasattr(column, "iloc") else np.asarray(column)
        if values.ndim != 1 or len(values) != n_samples:
            raise ValueError(
                f"column, given as per-row values, must be 1-d of length "
                f"{n_samples} (the number of samples), got shape "
                f"{np.shape(values)}."
            )
        return values, None
    if hasattr(X, "columns"):
        if column not in X.columns:
            raise ValueError(
                f"column {column!r} is not a column of X; its columns are "
                f"{list(X.columns)}."
            )
        return X[column], column
    n_columns = np.shape(X)[1] if np.ndim(X) == 2 else 0
    if isinstance(column, bool) or not isinstance(column, (int, np.integer)):
        raise ValueError(
            f"column must be an int index when X is not a DataFrame, got {column!r}."
        )
    if not -n_columns <= column < n_columns:
        raise ValueError(
            f"column={column} is out of range for X with {n_columns} columns."
        )
    return np.asarray(X)[:, column], column


def _has_missing(values):
    if hasattr(values, "isna"):
        return bool(values.isna().any())
    if values.dtype.kind in "fc":
        return bool(np.isnan(values).any())
    return values.dtype == object and any(v is None or v != v for v in values)


def _quantile_tasks(values, n_bins):
    n_bins = _check_int(n_bins, "n_bins")
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError("column must be numeric to be cut into n_bins.") from exc
    if not np.all(np.isfinite(values)):
        raise ValueError("column must be finite to be cut into n_bins.")
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    task_id = np.searchsorted(edges, values, side="left")
    counts = np.bincount(task_id, minlength=n_bins)
    if np.any(counts == 0):
        raise ValueError(
            f"The column has too few distinct values to be cut into n_bins={n_bins} "
            f"non-empty quantile bins (bin sizes {counts.tolist()})."
        )
    return task_id


def _category_tasks(values, order):
    if hasattr(values, "cat"):
        categories = np.asarray(values.cat.categories)
        observed = np.asarray(values.cat.codes)
        categories = categories[np.unique(observed[observed >= 0])]
        values = np.asarray(values, dtype=object)
    else:
        values = np.asarray(values)
        categories = None
    if order is None:
        order = categories if categories is not None else np.unique(values)
    else:
        order = np.asarray(order)
        unique = np.unique(values)
        if (
            order.ndim != 1
            or order.size != unique.size
            or not np.all(np.isin(order, unique))
            or not np.all(np.isin(unique, order))
        ):
            raise ValueError(
                f"order must list every distinct value of the column exactly "
                f"once; the column has {unique.tolist()}, got {order.tolist()}."
            )
    task_id = np.empty(values.shape[0], dtype=int)
    for t, value in enumerate(order):
        task_id[values == value] = t
    return task_id


def split_by_column(X, y, column, *, order=None, n_bins=None, drop=True):
    """Build a stream from tabular data whose tasks are defined by a column.

    Each distinct value of ``column`` (or each of its quantile bins) is one
    task. The rows are reordered task by task, keeping their original order
    within a task; every row appears exactly once.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or DataFrame
        Tabular data. A DataFrame stays a DataFrame (with a fresh index), so
        column transformers keep working.
    y : array-like of shape (n_samples,)
        Targets (classification or regression).
    column : str, int or array-like of shape (n_samples,)
        The column defining the tasks: a column name of a DataFrame, a column
        index of an array, or the per-row task values themselves.
    order : array-like, default=None
        The task order, listing every distinct value of the column once.
        Default: the categories' order for a pandas categorical column, else
        sorted. Ignored when ``n_bins`` is given.
    n_bins : int, default=None
        Cut a numeric column into this many quantile bins (of about equal
        size), one task each, lowest values first.
    drop : bool, default=True
        Whether to drop the column from ``X`` (when it is one of its columns).

    Returns
    -------
    X_stream : ndarray or DataFrame of shape (n_samples, n_features_out)
        The rows of ``X``, task by task.
    y_stream : ndarray of shape (n_samples,)
        Their targets.
    task_id : ndarray of shape (n_samples,)
        The task of each row, ints ``0 .. n_tasks - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import split_by_column
    >>> X = np.array([[1.0, 0], [2.0, 1], [3.0, 0], [4.0, 1]])
    >>> Xs, ys, task_id = split_by_column(X, [10, 20, 30, 40], column=1)
    >>> Xs.ravel().tolist(), ys.tolist(), task_id.tolist()
    ([1.0, 3.0, 2.0, 4.0], [10, 30, 20, 40], [0, 0, 1, 1])
    >>> split_by_column(X, [10, 20, 30, 40], column=0, n_bins=2)[2].tolist()
    [0, 0, 1, 1]
    """
    n_samples = _n_samples(X)
    y = _check_y(y, n_samples)
    values, name = _column_values(X, column, n_samples)
    if _has_missing(values):
        raise ValueError("column must not contain missing values.")
    if n_bins is not None:
        task_id = _quantile_tasks(values, n_bins)
    else:
        task_id = _category_tasks(values, order)
    if drop and name is not None:
        X = X.drop(columns=name) if hasattr(X, "columns") else np.delete(X, name, 1)
    rows = np.argsort(task_id, kind="stable")
    return _take(X, rows), y[rows], task_id[rows]
