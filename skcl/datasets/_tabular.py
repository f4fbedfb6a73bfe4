import numpy as np
from sklearn.datasets import load_diabetes, load_wine

from ._column import split_by_column
from ._train_test import train_test_split_stream
from ._validation import _check_int


def _stream(bunch, by, n_bins, test_size, random_state):
    names = list(bunch.feature_names)
    if by not in names:
        raise ValueError(f"by must be one of {names}, got {by!r}.")
    X, y, task_id = split_by_column(
        bunch.data.astype(np.float32), bunch.target, names.index(by), n_bins=n_bins
    )
    return train_test_split_stream(
        X, y, task_id, test_size=test_size, random_state=random_state
    )


def load_diabetes_stream(by="age", *, n_tasks=None, test_size=0.25, random_state=None):
    """Load scikit-learn's diabetes data as a regression stream cut by a feature.

    442 patients, 10 features (age, sex, body mass index, blood pressure and
    six blood serum measurements, each mean-centred and scaled), target a
    measure of disease progression one year later (25 to 346). The tasks are
    the two sexes (``by="sex"``) or the quantile bins of another feature,
    lowest first; the ``by`` feature is removed from ``X``. Every task is
    split into train and test parts with :func:`train_test_split_stream`.

    Parameters
    ----------
    by : str, default="age"
        The feature defining the tasks, one of ``"age"``, ``"sex"``, ``"bmi"``,
        ``"bp"``, ``"s1"`` ... ``"s6"``.
    n_tasks : int, default=None
        Number of quantile bins (tasks); default 3. With ``by="sex"`` it
        must be None or 2.
    test_size : float or int, default=0.25
        Proportion (or number) of each task's rows held out for testing.
    random_state : int, RandomState instance or None, default=None
        Seeds the train/test split.

    Returns
    -------
    X_train, X_test, y_train, y_test, task_train, task_test : ndarrays
        In the order of :func:`~sklearn.model_selection.train_test_split`.
        ``X`` is float32 of shape ``(n, 9)``, ``y`` float32, ``task`` ints
        ``0 .. n_tasks - 1``; rows are grouped by task, task 0 first.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import load_diabetes_stream
    >>> X_tr, X_te, y_tr, y_te, t_tr, t_te = load_diabetes_stream(
    ...     "sex", random_state=0
    ... )
    >>> X_tr.shape, X_te.shape
    ((331, 9), (111, 9))
    >>> np.bincount(t_tr).tolist()
    [176, 155]
    """
    if by == "sex":
        if n_tasks is not None and n_tasks != 2:
            raise ValueError(f'n_tasks must be None or 2 for by="sex", got {n_tasks}.')
        n_bins = None
    else:
        n_bins = 3 if n_tasks is None else _check_int(n_tasks, "n_tasks")
    bunch = load_diabetes()
    bunch.target = bunch.target.astype(np.float32)
    return _stream(bunch, by, n_bins, test_size, random_state)


def load_wine_stream(by="alcohol", *, n_tasks=3, test_size=0.25, random_state=None):
    """Load scikit-learn's wine data as a classification stream cut by a feature.

    178 wines of 3 cultivars (the classes), 13 chemical features. The tasks
    are the quantile bins of the ``by`` feature, lowest first, so both the
    inputs and the class proportions drift from task to task (with the
    default ``by="alcohol"`` the first task holds no wine of class 0). The
    ``by`` feature is removed from ``X``. Every task is split into train and
    test parts, stratified by class, with :func:`train_test_split_stream`.

    Parameters
    ----------
    by : str, default="alcohol"
        The feature defining the tasks, one of the 13 feature names of
        :func:`sklearn.datasets.load_wine`.
    n_tasks : int, default=3
        Number of quantile bins (tasks).
    test_size : float or int, default=0.25
        Proportion (or number) of each task's rows held out for testing.
    random_state : int, RandomState instance or None, default=None
        Seeds the train/test split.

    Returns
    -------
    X_train, X_test, y_train, y_test, task_train, task_test : ndarrays
        In the order of :func:`~sklearn.model_selection.train_test_split`.
        ``X`` is float32 of shape ``(n, 12)`` (not standardised: put a
        scaler in the pipeline), ``y`` int64 classes 0-2, ``task`` ints
        ``0 .. n_tasks - 1``; rows are grouped by task, task 0 first.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import load_wine_stream
    >>> X_tr, X_te, y_tr, y_te, t_tr, t_te = load_wine_stream(random_state=0)
    >>> X_tr.shape, X_te.shape
    ((133, 12), (45, 12))
    >>> np.bincount(y_tr[t_tr == 0], minlength=3).tolist()
    [0, 40, 5]
    """
    bunch = load_wine()
    bunch.target = bunch.target.astype(np.int64)
    return _stream(bunch, by, _check_int(n_tasks, "n_tasks"), test_size, random_state)
