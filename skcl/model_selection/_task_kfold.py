import numbers

from sklearn.model_selection import KFold, StratifiedKFold

from ._task_split import _TaskSplitter


class TaskKFold(_TaskSplitter):
    """K-fold cross-validation within every task of a stream.

    Each task is split into ``n_splits`` folds of its own (stratified by class
    for classification targets), and fold ``k`` of the stream joins fold ``k``
    of every task: every test fold holds out about ``1 / n_splits`` of every
    task, and every training fold keeps the rest of every task, in the order
    of the stream. A continual estimator trained on a training fold has thus
    seen every task and can be scored with the continual metrics (accuracy
    matrix, forgetting, ...) on the test fold. Pooled splitters such as
    :class:`~sklearn.model_selection.KFold` on a stream whose tasks come one
    after the other would instead hold out whole tasks.

    The task ids come as ``task_id`` (routed by scikit-learn's searches when
    metadata routing is enabled) or as ``groups`` (passed by the searches
    without routing). Without either, :meth:`split` raises a ``ValueError``
    rather than treat a stream as a single task; ``task_id=0`` means one task.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2. Every task needs at least ``n_splits``
        samples (and, when stratified, a class with that many).
    stratify : bool, default=True
        Stratify each task's folds by class when ``y`` is a binary or
        multiclass target (as :class:`~sklearn.model_selection.StratifiedKFold`);
        other targets, e.g. for regression, are split as by
        :class:`~sklearn.model_selection.KFold`.
    shuffle : bool, default=False
        Whether to shuffle each task's samples before splitting it.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling when ``shuffle=True``; pass an int for the same
        folds at every call of :meth:`split`.

    See Also
    --------
    TaskShuffleSplit : Random hold-out splits within every task.
    RegimeSearchCV : Search the training regime, cross-validated on these folds.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.model_selection import TaskKFold
    >>> X = np.zeros((12, 2))
    >>> y = np.tile([0, 1], 6)
    >>> task_id = np.repeat([0, 1], 6)
    >>> for train, test in TaskKFold(n_splits=3).split(X, y, task_id=task_id):
    ...     print(test, task_id[test], y[test])
    [0 1 6 7] [0 0 1 1] [0 1 0 1]
    [2 3 8 9] [0 0 1 1] [0 1 0 1]
    [ 4  5 10 11] [0 0 1 1] [0 1 0 1]
    """

    def __init__(self, n_splits=5, *, stratify=True, shuffle=False, random_state=None):
        if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool):
            raise TypeError(f"n_splits must be an int, got {n_splits!r}.")
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {n_splits}.")
        for name, value in [("stratify", stratify), ("shuffle", shuffle)]:
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}.")
        if not shuffle and random_state is not None:
            raise ValueError(
                "random_state has no effect since shuffle is False: leave "
                "random_state=None or set shuffle=True."
            )
        self.n_splits = int(n_splits)
        self.stratify = stratify
        self.shuffle = shuffle
        self.random_state = random_state

    def _task_splitter(self, stratified, rng):
        splitter = StratifiedKFold if stratified else KFold
        return splitter(
            self.n_splits,
            shuffle=self.shuffle,
            random_state=rng if self.shuffle else None,
        )
