import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from ._validation import _check_y, _n_samples, _take


def train_test_split_stream(
    X,
    y,
    task_id,
    *,
    test_size=None,
    train_size=None,
    stratify="auto",
    random_state=None,
):
    """Split every task of a stream into train and test parts.

    Each task is split on its own, in the same proportion, with
    :func:`sklearn.model_selection.train_test_split` (stratified by ``y``
    for classification targets), so every task appears in both parts. Both
    parts keep the tasks contiguous, in order of first appearance; the rows
    within a task are shuffled.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, ...)
        Input samples.
    y : array-like of shape (n_samples,)
        Targets.
    task_id : array-like of shape (n_samples,)
        The task of each row (ints or strings).
    test_size : float or int, default=None
        Proportion (float) or number of rows (int) of each task in the test
        part; 0.25 when both sizes are None.
    train_size : float or int, default=None
        Proportion or number of rows of each task in the train part; the
        complement of ``test_size`` when None.
    stratify : "auto" or bool, default="auto"
        Whether to stratify each task's split by ``y``. "auto" stratifies
        labels that are not floating point (ints, strings, ...) and never
        floating-point targets, which it takes for regression.
    random_state : int, RandomState instance or None, default=None
        Seeds the splits. Pass an int for reproducible output.

    Returns
    -------
    X_train, X_test, y_train, y_test, task_train, task_test : arrays
        The train and test parts, in the order of
        :func:`~sklearn.model_selection.train_test_split`.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import train_test_split_stream
    >>> X = np.arange(16).reshape(8, 2)
    >>> y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    >>> task_id = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> X_tr, X_te, y_tr, y_te, t_tr, t_te = train_test_split_stream(
    ...     X, y, task_id, test_size=0.5, random_state=0
    ... )
    >>> t_tr.tolist(), t_te.tolist()
    ([0, 0, 1, 1], [0, 0, 1, 1])
    >>> np.bincount(y_te).tolist()
    [2, 2]
    """
    n_samples = _n_samples(X)
    y = _check_y(y, n_samples)
    task_id = _check_y(task_id, n_samples, name="task_id")
    if stratify == "auto":
        stratify = y.dtype.kind not in "fc"
    elif not isinstance(stratify, bool):
        raise ValueError(f'stratify must be "auto", True or False, got {stratify!r}.')
    rng = check_random_state(random_state)
    _, first = np.unique(task_id, return_index=True)
    train, test = [], []
    for task in task_id[np.sort(first)].tolist():
        rows = np.flatnonzero(task_id == task)
        try:
            tr, te = train_test_split(
                rows,
                test_size=test_size,
                train_size=train_size,
                stratify=y[rows] if stratify else None,
                random_state=rng,
            )
        except ValueError as exc:
            raise ValueError(f"Cannot split task {task!r}: {exc}") from exc
        train.append(tr)
        test.append(te)
    train, test = np.concatenate(train), np.concatenate(test)
    return (
        _take(X, train),
        _take(X, test),
        y[train],
        y[test],
        task_id[train],
        task_id[test],
    )
