import numbers

from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from ._task_split import _TaskSplitter


class TaskShuffleSplit(_TaskSplitter):
    """Random hold-out splits within every task of a stream.

    Each split holds out a random ``test_size`` of every task (stratified by
    class for classification targets) and trains on the rest of every task,
    in the order of the stream. With the default ``n_splits=1`` it is a single
    hold-out split per task, the cheap alternative to :class:`TaskKFold`;
    more splits give repeated random hold-outs.

    The task ids come as ``task_id`` or as its alias ``groups``, as for
    :class:`TaskKFold`.

    Parameters
    ----------
    n_splits : int, default=1
        Number of re-shuffling and splitting iterations.
    test_size : float or int, default=0.25
        The proportion of every task to hold out, in (0, 1), or the number of
        samples held out per task.
    stratify : bool, default=True
        Stratify each task's split by class when ``y`` is a binary or
        multiclass target (as
        :class:`~sklearn.model_selection.StratifiedShuffleSplit`).
    random_state : int, RandomState instance or None, default=None
        Seeds the splits; pass an int for the same splits at every call of
        :meth:`split`.

    See Also
    --------
    TaskKFold : K-fold cross-validation within every task.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.model_selection import TaskShuffleSplit
    >>> X = np.zeros((40, 2))
    >>> y = np.tile([0, 1], 20)
    >>> task_id = np.repeat([0, 1], 20)
    >>> cv = TaskShuffleSplit(test_size=0.25, random_state=0)
    >>> train, test = next(cv.split(X, y, task_id=task_id))
    >>> np.bincount(task_id[test]), np.bincount(y[test])
    (array([5, 5]), array([5, 5]))
    """

    def __init__(self, n_splits=1, *, test_size=0.25, stratify=True, random_state=None):
        if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool):
            raise TypeError(f"n_splits must be an int, got {n_splits!r}.")
        if n_splits < 1:
            raise ValueError(f"n_splits must be at least 1, got {n_splits}.")
        valid_size = (
            isinstance(test_size, numbers.Integral)
            and not isinstance(test_size, bool)
            and test_size >= 1
        ) or (isinstance(test_size, numbers.Real) and 0 < test_size < 1)
        if not valid_size:
            raise ValueError(
                "test_size must be a float in (0, 1) or an int >= 1, got "
                f"{test_size!r}."
            )
        if not isinstance(stratify, bool):
            raise TypeError(f"stratify must be a bool, got {stratify!r}.")
        self.n_splits = int(n_splits)
        self.test_size = test_size
        self.stratify = stratify
        self.random_state = random_state

    def _task_splitter(self, stratified, rng):
        splitter = StratifiedShuffleSplit if stratified else ShuffleSplit
        return splitter(self.n_splits, test_size=self.test_size, random_state=rng)
