import numpy as np

from .._matrix import _accuracy_matrix


def _check_display_matrix(R, task_labels, name, *, rows_are_tasks=True):
    """Return ``R`` as a 2-D float array and its column labels.

    When the rows are training tasks, there are at most as many as columns.
    """
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or not 0 < R.shape[0] <= (R.shape[1] if rows_are_tasks else np.inf):
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_tasks, n_columns) with "
            f"0 < n_tasks <= n_columns, got shape {R.shape}."
        )
    if task_labels is None:
        return R, list(range(R.shape[1]))
    task_labels = list(task_labels)
    if len(task_labels) != R.shape[1]:
        raise ValueError(
            f"task_labels must have one label per column of {name} "
            f"({R.shape[1]}), got {len(task_labels)}."
        )
    return R, task_labels


def _check_display_matrices(matrices, task_labels, name, *, rows_are_tasks=True):
    """Return the matrices of a display by name, as 2-D float arrays, and labels.

    ``matrices`` is one matrix (named None) or a non-empty dict of matrices of
    one shape.
    """
    named = matrices if isinstance(matrices, dict) else {None: matrices}
    if not named:
        raise ValueError(f"{name} must not be an empty dict.")
    what = f"each matrix of {name}" if isinstance(matrices, dict) else name
    checked = {
        key: _check_display_matrix(R, task_labels, what, rows_are_tasks=rows_are_tasks)
        for key, R in named.items()
    }
    shapes = {R.shape for R, _ in checked.values()}
    if len(shapes) > 1:
        raise ValueError(
            f"The matrices of {name} must have the same shape, got {sorted(shapes)}."
        )
    labels = next(iter(checked.values()))[1]
    return {key: R for key, (R, _) in checked.items()}, labels


def _check_axes(ax, n_matrices):
    """Return the user's ``ax`` as a flat array of one Axes per matrix."""
    axes = np.ravel(np.asarray(ax, dtype=object))
    if len(axes) != n_matrices:
        raise ValueError(
            f"ax must hold one Axes per accuracy matrix ({n_matrices}), "
            f"got {len(axes)}."
        )
    return axes


def _estimator_matrices(estimator, X, y, task_id, *, scoring, include_untrained):
    """The accuracy matrix of an estimator, or a dict of them by name, and labels.

    The estimators of a dict must have trained the same tasks in the same order.
    """
    several = isinstance(estimator, dict)
    estimators = estimator if several else {None: estimator}
    matrices, task_labels = {}, None
    for name, est in estimators.items():
        matrices[name], labels = _accuracy_matrix(
            est, X, y, task_id, scoring=scoring, include_untrained=include_untrained
        )
        if task_labels is not None and labels != task_labels:
            raise ValueError(
                "All the estimators must have trained the same tasks in the same "
                f"order, got {task_labels} and {labels} (for {name!r})."
            )
        task_labels = labels
    return (matrices if several else matrices[None]), task_labels
