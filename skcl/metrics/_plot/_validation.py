import numpy as np


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
