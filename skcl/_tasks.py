"""Task-id helpers shared by the estimators, metrics, callbacks and splitters."""

import numbers

import numpy as np

_INT64 = np.iinfo(np.int64)


def _as_int64(task, name):
    if not _INT64.min <= task <= _INT64.max:
        raise ValueError(
            f"{name} {task} is outside the int64 range [{_INT64.min}, {_INT64.max}]."
        )
    return task


def task_order(task_id):
    """Return the distinct ids of a 1-d ``task_id`` array in order of first appearance.

    The ids come back as Python ints or strings.
    """
    _, first = np.unique(task_id, return_index=True)
    return task_id[np.sort(first)].tolist()


def check_task_id(task_id, n_samples, name="task_id"):
    """Return ``task_id`` as a 1-d array of ``n_samples`` ints or strings."""
    try:
        scalar = task_id is None or np.ndim(task_id) == 0
    except ValueError as error:  # ragged nested lists
        raise ValueError(
            f"{name} must be a scalar or have one entry per sample: {error}"
        ) from error
    if scalar:
        task = 0 if task_id is None else task_id
        if not isinstance(task, (numbers.Integral, str, np.str_)) or isinstance(
            task, bool
        ):
            raise TypeError(f"{name} must be an int or a str, got {task!r}.")
        if isinstance(task, (str, np.str_)):
            return np.full(n_samples, task, dtype=object)
        return np.full(n_samples, _as_int64(int(task), name), dtype=np.int64)
    array = np.asarray(task_id)
    if array.ndim != 1 or len(array) != n_samples:
        raise ValueError(
            f"{name} must be a scalar or have one entry per sample: got shape "
            f"{array.shape} for {n_samples} samples."
        )
    if array.dtype.kind not in "iuUO":
        raise TypeError(f"{name} must hold ints or strings, got dtype {array.dtype}.")
    if array.dtype.kind in "iu":
        if array.size and (
            int(array.max()) > _INT64.max or int(array.min()) < _INT64.min
        ):
            raise ValueError(
                f"{name} holds integers outside the int64 range "
                f"[{_INT64.min}, {_INT64.max}]."
            )
        return array.astype(np.int64)
    if array.dtype.kind == "U" and not isinstance(task_id, np.ndarray):
        array = np.asarray(task_id, dtype=object)  # numpy turns [0, "a"] into strings
    if array.dtype.kind == "O":
        if not all(
            isinstance(t, (numbers.Integral, str)) and not isinstance(t, bool)
            for t in array
        ):
            raise TypeError(f"{name} must hold ints or strings only.")
        if len({isinstance(t, str) for t in array}) > 1:
            raise TypeError(f"{name} must hold ints or strings, not both.")
        for t in array:
            if not isinstance(t, str):
                _as_int64(int(t), name)
    return array
