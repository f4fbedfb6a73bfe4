import numpy as np
from sklearn.utils import check_random_state

from ._validation import _check_int, _check_y, _n_samples, _take


def _class_order(classes, class_order, random_state):
    if class_order is None:
        return classes
    if isinstance(class_order, str):
        if class_order != "random":
            raise ValueError(
                f'class_order must be None, "random" or a list of classes, '
                f"got {class_order!r}."
            )
        return check_random_state(random_state).permutation(classes)
    order = np.asarray(class_order)
    if order.ndim != 1 or order.size == 0:
        raise ValueError("class_order must be a non-empty 1-d list of classes.")
    unknown = order[~np.isin(order, classes)]
    if unknown.size:
        raise ValueError(
            f"class_order contains classes not in y: {unknown.tolist()}; "
            f"the classes of y are {classes.tolist()}."
        )
    if np.unique(order).size != order.size:
        raise ValueError("class_order must not repeat a class.")
    return order


def _task_sizes(n_classes, n_tasks, classes_per_task):
    if classes_per_task is None:
        if n_tasks is None:
            classes_per_task = 2
        else:
            n_tasks = _check_int(n_tasks, "n_tasks")
            if n_tasks > n_classes:
                raise ValueError(
                    f"n_tasks={n_tasks} is more tasks than there are classes "
                    f"({n_classes})."
                )
            if n_classes % n_tasks:
                raise ValueError(
                    f"The {n_classes} classes cannot be split evenly into "
                    f"n_tasks={n_tasks} tasks; pass classes_per_task (an int or "
                    "a list of ints) or a shorter class_order."
                )
            return [n_classes // n_tasks] * n_tasks
    if np.ndim(classes_per_task) == 0:
        k = _check_int(classes_per_task, "classes_per_task")
        if n_tasks is None:
            if n_classes % k:
                raise ValueError(
                    f"The {n_classes} classes cannot be split into tasks of "
                    f"classes_per_task={k}; pass n_tasks to use only the "
                    "first classes, or a list of ints."
                )
            n_tasks = n_classes // k
        sizes = [k] * _check_int(n_tasks, "n_tasks")
    else:
        sizes = [_check_int(k, "classes_per_task") for k in classes_per_task]
        if not sizes:
            raise ValueError("classes_per_task must not be empty.")
        if n_tasks is not None and _check_int(n_tasks, "n_tasks") != len(sizes):
            raise ValueError(
                f"n_tasks={n_tasks} does not match the {len(sizes)} entries of "
                "classes_per_task."
            )
    if sum(sizes) > n_classes:
        raise ValueError(
            f"The requested split needs {sum(sizes)} classes "
            f"(classes_per_task={classes_per_task}, n_tasks={len(sizes)}) but "
            f"only {n_classes} are available."
        )
    return sizes


def make_split_stream(
    X,
    y,
    n_tasks=None,
    *,
    classes_per_task=None,
    class_order=None,
    relabel=False,
    return_task_classes=False,
    random_state=None,
):
    """Build a class- or task-incremental stream by splitting the classes.

    The classes, in ``class_order``, are cut into consecutive groups; task
    ``t`` holds the rows of ``X`` whose class is in group ``t``, in their
    original order (Split MNIST: 5 tasks of 2 digits). Each row appears at
    most once; classes left out of the split are dropped. The tasks are
    concatenated: task 0's rows first, then task 1's, and so on.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, ...)
        Input samples.
    y : array-like of shape (n_samples,)
        Class labels.
    n_tasks : int, default=None
        Number of tasks. Alone it must divide the number of classes; with an
        int ``classes_per_task`` it uses only the first
        ``n_tasks * classes_per_task`` classes of ``class_order``.
    classes_per_task : int or list of int, default=None
        Classes in each task, one int for all tasks or one per task (e.g.
        ``[5, 1, 1, 1, 1, 1]``). With neither this nor ``n_tasks``, 2.
    class_order : None, "random" or array-like, default=None
        Order in which classes are assigned to tasks: sorted (None), shuffled
        by ``random_state`` ("random"), or the given classes (a subset is
        allowed; the rows of the other classes are dropped).
    relabel : bool, default=False
        Whether to map each task's classes to ``0 .. k - 1`` (in
        ``class_order``), as multi-head (task-incremental) models use.
    return_task_classes : bool, default=False
        Whether to also return the original classes of each task.
    random_state : int, RandomState instance or None, default=None
        Seeds the class order when ``class_order="random"``; otherwise unused.

    Returns
    -------
    X_stream : ndarray or DataFrame of shape (n_stream, ...)
        The rows of the selected classes, task by task.
    y_stream : ndarray of shape (n_stream,)
        Their labels, relabelled when ``relabel=True``.
    task_id : ndarray of shape (n_stream,)
        The task of each row, ints ``0 .. n_tasks - 1``.
    task_classes : list of ndarray
        Only if ``return_task_classes=True``: the original classes of each
        task; with ``relabel=True``, label ``j`` of task ``t`` is class
        ``task_classes[t][j]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import make_split_stream
    >>> X = np.arange(12).reshape(6, 2)
    >>> y = np.array([0, 1, 2, 3, 2, 0])
    >>> Xs, ys, task_id = make_split_stream(X, y, n_tasks=2)
    >>> ys.tolist(), task_id.tolist()
    ([0, 1, 0, 2, 3, 2], [0, 0, 0, 1, 1, 1])
    >>> make_split_stream(X, y, n_tasks=2, relabel=True)[1].tolist()
    [0, 1, 0, 0, 1, 0]
    """
    y = _check_y(y, _n_samples(X))
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(
            f"y must contain at least 2 classes to split, got {classes.size}."
        )
    order = _class_order(classes, class_order, random_state)
    sizes = _task_sizes(order.size, n_tasks, classes_per_task)
    task_classes = np.split(order[: sum(sizes)], np.cumsum(sizes)[:-1])
    indices, y_parts, task_parts = [], [], []
    for t, cls in enumerate(task_classes):
        idx = np.flatnonzero(np.isin(y, cls))
        indices.append(idx)
        if relabel:
            sorter = np.argsort(cls)
            y_parts.append(sorter[np.searchsorted(cls, y[idx], sorter=sorter)])
        else:
            y_parts.append(y[idx])
        task_parts.append(np.full(idx.size, t))
    result = (
        _take(X, np.concatenate(indices)),
        np.concatenate(y_parts),
        np.concatenate(task_parts),
    )
    if return_task_classes:
        return (*result, task_classes)
    return result
