import numpy as np
from sklearn.utils import check_random_state

from ._validation import _check_array_X_y, _check_dtype, _check_int


def make_permuted_stream(
    X,
    y,
    n_tasks=10,
    *,
    permute_first=False,
    dtype=None,
    return_permutations=False,
    random_state=None,
):
    """Build a domain-incremental stream by permuting the features per task.

    Every task holds all of ``X``, its features (pixels) shuffled by a fixed
    random permutation of its own; the labels stay the same (Permuted MNIST).
    The tasks are concatenated: task 0's rows first, then task 1's, and so on.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, ...)
        Input samples. Trailing dimensions (e.g. images ``(n, h, w)``) are
        permuted as one flat feature vector and the shape is kept.
    y : array-like of shape (n_samples,)
        Targets, repeated for every task.
    n_tasks : int, default=10
        Number of tasks.
    permute_first : bool, default=False
        Whether task 0 is permuted too. By default it holds the original data.
    dtype : numpy dtype, default=None
        Data type of the returned ``X`` (default: that of ``X``). The stream
        takes ``n_tasks`` times the memory of ``X``; 20 permuted MNIST tasks of
        60,000 images in float32 take 3.7 GB, in ``np.float16`` half of that.
        To avoid the copy altogether, ask for the permutations (see
        ``return_permutations``) and permute mini-batches on the fly.
    return_permutations : bool, default=False
        Whether to also return the permutations. They depend only on
        ``n_features``, ``n_tasks``, ``permute_first`` and ``random_state``,
        so calling with a single row of ``X`` gets them cheaply.
    random_state : int, RandomState instance or None, default=None
        Seeds the permutations. Pass an int for reproducible output.

    Returns
    -------
    X_stream : ndarray of shape (n_tasks * n_samples, ...)
        The permuted samples, task by task.
    y_stream : ndarray of shape (n_tasks * n_samples,)
        The targets, ``y`` repeated ``n_tasks`` times.
    task_id : ndarray of shape (n_tasks * n_samples,)
        The task of each row, ints ``0 .. n_tasks - 1``.
    permutations : ndarray of shape (n_tasks, n_features)
        Only if ``return_permutations=True``: task ``t`` has
        ``X_stream[task_id == t] == X.reshape(n_samples, -1)[:, permutations[t]]``
        (reshaped back). Row 0 is the identity unless ``permute_first=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import make_permuted_stream
    >>> X = np.arange(8.0).reshape(2, 4)
    >>> Xs, ys, task_id, perms = make_permuted_stream(
    ...     X, [0, 1], n_tasks=3, return_permutations=True, random_state=0
    ... )
    >>> Xs.shape, task_id.tolist()
    ((6, 4), [0, 0, 1, 1, 2, 2])
    >>> perms[0].tolist()
    [0, 1, 2, 3]
    >>> bool(np.array_equal(Xs[task_id == 1], X[:, perms[1]]))
    True
    """
    X, y = _check_array_X_y(X, y)
    n_tasks = _check_int(n_tasks, "n_tasks")
    dtype = _check_dtype(dtype, X.dtype)
    rng = check_random_state(random_state)
    n_samples = X.shape[0]
    flat = X.reshape(n_samples, -1)
    n_features = flat.shape[1]
    permutations = np.empty((n_tasks, n_features), dtype=np.intp)
    for t in range(n_tasks):
        permutations[t] = (
            rng.permutation(n_features)
            if t > 0 or permute_first
            else np.arange(n_features)
        )
    X_stream = np.empty((n_tasks * n_samples, n_features), dtype=dtype)
    for t, perm in enumerate(permutations):
        np.take(
            flat,
            perm,
            axis=1,
            out=X_stream[t * n_samples : (t + 1) * n_samples],
            mode="clip",
        )
    X_stream = X_stream.reshape(n_tasks * n_samples, *X.shape[1:])
    y_stream = np.tile(y, n_tasks)
    task_id = np.repeat(np.arange(n_tasks), n_samples)
    if return_permutations:
        return X_stream, y_stream, task_id, permutations
    return X_stream, y_stream, task_id
