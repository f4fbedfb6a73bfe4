import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from ._permuted import make_permuted_stream
from ._rotated import make_rotated_stream
from ._split import make_split_stream
from ._validation import _check_int

_BUILDERS = {
    "permuted": make_permuted_stream,
    "rotated": make_rotated_stream,
    "split": make_split_stream,
}


def load_digits_stream(
    kind="permuted", *, n_tasks=5, test_size=0.25, random_state=None, **kwargs
):
    """Load scikit-learn's embedded 8x8 digits as a stream of tasks.

    The 1,797 digits are split once into train and test parts (stratified by
    class), and the same stream is built from each part, so the tasks share
    their permutations, angles or classes and no image is in both parts.
    Fast and offline: the default data for quick starts, tests and benchmarks.

    Parameters
    ----------
    kind : {"permuted", "rotated", "split"}, default="permuted"
        The stream: :func:`make_permuted_stream`, :func:`make_rotated_stream`
        (task ``t`` rotated by ``10 * t`` degrees) or
        :func:`make_split_stream` (5 tasks of 2 digits by default).
    n_tasks : int, default=5
        Number of tasks; ignored when ``kind="rotated"`` gets ``angles``.
    test_size : float or int, default=0.25
        Proportion (or number) of the digits held out for testing.
    random_state : int, RandomState instance or None, default=None
        Seeds the train/test split and the stream.
    **kwargs
        Further parameters of the stream builder, e.g. ``relabel=True`` for
        ``kind="split"`` or ``angles=[0, 45, 90]`` for ``kind="rotated"``.

    Returns
    -------
    X_train, X_test, y_train, y_test, task_train, task_test : ndarrays
        In the order of :func:`~sklearn.model_selection.train_test_split`.
        ``X`` is float32 of shape ``(n, 64)`` in [0, 1] (pixel / 16), ``y``
        int64 digits, ``task`` ints ``0 .. n_tasks - 1``; rows are grouped by
        task, task 0 first.

    Examples
    --------
    >>> from skcl.datasets import load_digits_stream
    >>> X_tr, X_te, y_tr, y_te, t_tr, t_te = load_digits_stream(
    ...     "permuted", n_tasks=3, random_state=0
    ... )
    >>> X_tr.shape, X_te.shape, X_tr.dtype
    ((4041, 64), (1350, 64), dtype('float32'))
    >>> sorted(set(t_te.tolist()))
    [0, 1, 2]
    """
    if kind not in _BUILDERS:
        raise ValueError(f"kind must be one of {sorted(_BUILDERS)}, got {kind!r}.")
    n_tasks = _check_int(n_tasks, "n_tasks")
    digits = load_digits()
    X = (digits.data / 16).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = check_random_state(random_state)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=rng
    )
    if kind != "rotated" or "angles" not in kwargs:
        kwargs["n_tasks"] = n_tasks
    seed = rng.randint(np.iinfo(np.int32).max)
    build = _BUILDERS[kind]
    X_train, y_train, task_train = build(X_train, y_train, random_state=seed, **kwargs)
    X_test, y_test, task_test = build(X_test, y_test, random_state=seed, **kwargs)
    return X_train, X_test, y_train, y_test, task_train, task_test
