import numpy as np
from sklearn.utils import check_random_state

from ._validation import _check_array_X_y, _check_dtype, _check_int


def make_random_label_stream(
    X, y, n_tasks=10, *, shuffle_first=True, dtype=None, random_state=None
):
    """Build a stream of the same inputs with freshly shuffled labels per task.

    Every task holds all of ``X`` with ``y`` randomly permuted across the
    samples, so the label marginal is kept exactly while the inputs carry no
    information about the labels: each task must be memorised anew (the
    plasticity benchmark of Kumar et al., "Maintaining Plasticity in Continual
    Learning via Regenerative Regularization", the L2 Init paper). The tasks
    are concatenated: task 0's rows first, then task 1's, and so on.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Input samples, repeated for every task.
    y : array-like of shape (n_samples,)
        Labels, shuffled for every task.
    n_tasks : int, default=10
        Number of tasks.
    shuffle_first : bool, default=True
        Whether task 0's labels are shuffled too; if False it holds the true
        labels.
    dtype : numpy dtype, default=None
        Data type of the returned ``X`` (default: that of ``X``). The stream
        takes ``n_tasks`` times the memory of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seeds the label permutations. Pass an int for reproducible output.

    Returns
    -------
    X_stream : ndarray of shape (n_tasks * n_samples, ...)
        ``X`` repeated ``n_tasks`` times.
    y_stream : ndarray of shape (n_tasks * n_samples,)
        The shuffled labels, task by task.
    task_id : ndarray of shape (n_tasks * n_samples,)
        The task of each row, ints ``0 .. n_tasks - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import make_random_label_stream
    >>> X = np.arange(8.0).reshape(4, 2)
    >>> Xs, ys, task_id = make_random_label_stream(X, [0, 0, 1, 1], n_tasks=2,
    ...                                            random_state=0)
    >>> Xs.shape, task_id.tolist()
    ((8, 2), [0, 0, 0, 0, 1, 1, 1, 1])
    >>> np.bincount(ys[task_id == 1]).tolist()
    [2, 2]
    """
    X, y = _check_array_X_y(X, y)
    n_tasks = _check_int(n_tasks, "n_tasks")
    dtype = _check_dtype(dtype, X.dtype)
    rng = check_random_state(random_state)
    n_samples = X.shape[0]
    X_stream = np.empty((n_tasks * n_samples, *X.shape[1:]), dtype=dtype)
    for t in range(n_tasks):
        X_stream[t * n_samples : (t + 1) * n_samples] = X
    y_stream = np.concatenate(
        [rng.permutation(y) if t > 0 or shuffle_first else y for t in range(n_tasks)]
    )
    task_id = np.repeat(np.arange(n_tasks), n_samples)
    return X_stream, y_stream, task_id
