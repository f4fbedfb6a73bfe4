"""The MNIST problems of the plasticity study of Kumar et al. (2025), at its size."""

import numpy as np
from sklearn.utils import check_random_state

from ._mnist import fetch_mnist
from ._random_label import make_random_label_stream
from ._validation import _check_int


def iter_permuted_mnist(
    data_home=None,
    *,
    n_tasks=500,
    n_samples=10000,
    permute_first=False,
    return_permutations=False,
    download_if_missing=True,
    random_state=None,
):
    """Yield the tasks of Permuted MNIST as the plasticity study builds it.

    Task ``t`` holds ``n_samples`` images drawn without replacement from
    MNIST's 60,000 training images, their pixels shuffled by the task's own
    random permutation (task 0 unpermuted unless ``permute_first``), with
    their true labels (Kumar, Marklund & Van Roy, "Maintaining Plasticity in
    Continual Learning via Regenerative Regularization", CoLLAs 2025: 500
    tasks of 10,000 images, one epoch of 625 steps of batch 16 each, MLP
    784-100-100-10). The tasks come one at a time, for ``partial_fit``: the
    500 tasks would take 15.7 GB at once.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Where MNIST's IDX files are, as :func:`fetch_mnist` reads them.
    n_tasks : int, default=500
        Number of tasks.
    n_samples : int, default=10000
        Images per task (at most 60,000).
    permute_first : bool, default=False
        Whether task 0 is permuted too.
    return_permutations : bool, default=False
        Whether each task also yields its pixel order (to permute other
        images, e.g. test images, as the task's).
    download_if_missing : bool, default=True
        See :func:`fetch_mnist`.
    random_state : int, RandomState instance or None, default=None
        Seeds the permutations and the draws, task after task.

    Returns
    -------
    tasks : iterator of tuples
        One ``(X_task, y_task, task)`` per task, drawn when it is reached:

    X_task : ndarray of shape (n_samples, 784), float32
        The task's permuted images, pixels in [0, 1].
    y_task : ndarray of shape (n_samples,), int64
        Their labels.
    task : int
        The task's index, ``0 .. n_tasks - 1``.
    pixels : ndarray of shape (784,)
        With ``return_permutations``: the task's pixel order, ``X_task`` being
        the drawn images' ``[:, pixels]``.

    Examples
    --------
    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import iter_permuted_mnist
    >>> clf = ContinualClassifier(batch_size=16, max_epochs=1)  # doctest: +SKIP
    >>> for X, y, task in iter_permuted_mnist("../shared/data/mnist", n_tasks=3,
    ...                                       random_state=0):  # doctest: +SKIP
    ...     clf.partial_fit(X, y, task_id=task, classes=range(10))
    """
    n_tasks = _check_int(n_tasks, "n_tasks")
    n_samples = _check_int(n_samples, "n_samples")
    X, _, y, _ = fetch_mnist(
        data_home, download_if_missing=download_if_missing, return_X_y=True
    )
    if n_samples > len(X):
        raise ValueError(f"n_samples must be at most {len(X)}, got {n_samples}.")
    tasks = _permuted_tasks(
        X, y, n_tasks, n_samples, permute_first, check_random_state(random_state)
    )
    if return_permutations:
        return tasks
    return (task[:3] for task in tasks)


def _permuted_tasks(X, y, n_tasks, n_samples, permute_first, rng):
    for task in range(n_tasks):
        pixels = np.arange(X.shape[1])
        if task > 0 or permute_first:
            pixels = rng.permutation(X.shape[1])
        rows = np.sort(rng.choice(len(X), n_samples, replace=False))
        yield X[rows][:, pixels], y[rows], task, pixels


def make_random_label_mnist(
    data_home=None,
    *,
    n_tasks=50,
    n_samples=1200,
    download_if_missing=True,
    random_state=None,
):
    """Build Random-label MNIST as the plasticity study builds it.

    ``n_samples`` MNIST training images drawn once; every task holds all of
    them with their labels shuffled anew (:func:`make_random_label_stream`):
    nothing carries over, each task must be memorised (Kumar et al., 2025:
    50 tasks of the same 1,200 images, 30,000 steps of batch 16 each, that
    is 400 epochs, MLP 784-100-100-10). 50 tasks take 188 MB.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Where MNIST's IDX files are, as :func:`fetch_mnist` reads them.
    n_tasks : int, default=50
        Number of tasks.
    n_samples : int, default=1200
        Images (at most 60,000).
    download_if_missing : bool, default=True
        See :func:`fetch_mnist`.
    random_state : int, RandomState instance or None, default=None
        Seeds the images drawn and the labels' shuffles.

    Returns
    -------
    X : ndarray of shape (n_tasks * n_samples, 784), float32
        The images, repeated task after task.
    y : ndarray of shape (n_tasks * n_samples,), int64
        The shuffled labels.
    task_id : ndarray of shape (n_tasks * n_samples,)
        The task of each row.

    Examples
    --------
    >>> from skcl.datasets import make_random_label_mnist
    >>> X, y, task_id = make_random_label_mnist(
    ...     "../shared/data/mnist", n_tasks=2, random_state=0)  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (2400, 784)
    """
    n_samples = _check_int(n_samples, "n_samples")
    X, _, y, _ = fetch_mnist(
        data_home, download_if_missing=download_if_missing, return_X_y=True
    )
    if n_samples > len(X):
        raise ValueError(f"n_samples must be at most {len(X)}, got {n_samples}.")
    rng = check_random_state(random_state)
    rows = np.sort(rng.choice(len(X), n_samples, replace=False))
    return make_random_label_stream(X[rows], y[rows], n_tasks, random_state=rng)
