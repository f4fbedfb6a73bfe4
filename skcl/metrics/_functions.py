"""Summary metrics of an accuracy matrix ``R``.

``R[t, i]`` is the score on task ``i`` after training task ``t`` (0-based, tasks
in training order), as returned by :func:`~skcl.metrics.accuracy_matrix`.
"""

import numpy as np


def _check_matrix(R):
    """Return ``R`` as a finite, square, non-empty 2-D float array."""
    try:
        R = np.asarray(R, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"R must be an array of numbers: {exc}") from exc
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(
            "R must be a non-empty square 2-D array of shape (n_tasks, n_tasks), got "
            f"shape {R.shape}. For a matrix with extra columns for untrained tasks, "
            "pass R[:, :n_tasks]."
        )
    if not np.isfinite(R).all():
        raise ValueError("R must contain only finite values (no NaN or inf).")
    return R


def average_accuracy(R):
    """Average accuracy after the last task.

    :math:`A_T = \\frac{1}{T} \\sum_{i=0}^{T-1} R_{T-1, i}`: the mean over tasks
    (not pooled over samples) of the final row of ``R`` [1]_.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    Returns
    -------
    score : float
        Average accuracy.

    References
    ----------
    .. [1] A. Chaudhry, P. K. Dokania, T. Ajanthan and P. H. S. Torr,
       "Riemannian Walk for Incremental Learning: Understanding Forgetting and
       Intransigence", ECCV 2018.

    Examples
    --------
    >>> from skcl.metrics import average_accuracy
    >>> R = [[0.9, 0.1], [0.6, 0.8]]
    >>> round(average_accuracy(R), 4)
    0.7
    """
    R = _check_matrix(R)
    return float(R[-1].mean())


def average_incremental_accuracy(R):
    """Average incremental accuracy.

    :math:`\\frac{1}{T} \\sum_{t=0}^{T-1} \\frac{1}{t+1} \\sum_{i=0}^{t} R_{t, i}`:
    the average accuracy on the tasks seen so far, averaged over the training
    steps [1]_.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    Returns
    -------
    score : float
        Average incremental accuracy.

    References
    ----------
    .. [1] S.-A. Rebuffi, A. Kolesnikov, G. Sperl and C. H. Lampert, "iCaRL:
       Incremental Classifier and Representation Learning", CVPR 2017.

    Examples
    --------
    >>> from skcl.metrics import average_incremental_accuracy
    >>> R = [[0.9, 0.1], [0.6, 0.8]]
    >>> round(average_incremental_accuracy(R), 4)
    0.8
    """
    R = _check_matrix(R)
    steps = np.arange(1, R.shape[0] + 1)
    return float(np.mean(np.tril(R).sum(axis=1) / steps))


def learning_accuracy(R):
    """Learning accuracy: the mean score on each task just after training it.

    :math:`\\frac{1}{T} \\sum_{i=0}^{T-1} R_{i, i}`, the mean of the diagonal of
    ``R`` [1]_. It measures how well new tasks are learned (plasticity),
    independently of forgetting.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    Returns
    -------
    score : float
        Learning accuracy.

    References
    ----------
    .. [1] M. Riemer, I. Cases, R. Ajemian, M. Liu, I. Rish, Y. Tu and G. Tesauro,
       "Learning to Learn without Forgetting by Maximizing Transfer and
       Minimizing Interference", ICLR 2019.

    Examples
    --------
    >>> from skcl.metrics import learning_accuracy
    >>> R = [[0.9, 0.1], [0.6, 0.8]]
    >>> round(learning_accuracy(R), 4)
    0.85
    """
    R = _check_matrix(R)
    return float(np.diag(R).mean())


def forgetting(R, *, reference="max"):
    """Average forgetting of the tasks before the last one.

    With ``reference="max"`` (Chaudhry et al. [1]_), task ``i < T-1`` has
    forgotten :math:`f_i = \\max_{l \\in [i, T-2]} R_{l, i} - R_{T-1, i}`, its best
    score before the last training step minus its final score. With
    ``reference="first"`` (the definition some libraries use),
    :math:`f_i = R_{i, i} - R_{T-1, i}`, its score just after training it minus
    its final score, which equals ``-backward_transfer(R)``. The result is
    :math:`F = \\frac{1}{T-1} \\sum_{i=0}^{T-2} f_i`.

    Greater is worse. It is negative when the final scores exceed the reference
    ones (the model improved on old tasks). By convention a single task
    (``T = 1``) has forgotten nothing and ``0.0`` is returned.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    reference : {"max", "first"}, default="max"
        Which earlier score of a task its final score is compared to: the best
        one over the steps ``i`` to ``T-2`` (``"max"``) or the one just after
        training the task (``"first"``).

    Returns
    -------
    score : float
        Average forgetting.

    References
    ----------
    .. [1] A. Chaudhry, P. K. Dokania, T. Ajanthan and P. H. S. Torr,
       "Riemannian Walk for Incremental Learning: Understanding Forgetting and
       Intransigence", ECCV 2018.

    Examples
    --------
    >>> from skcl.metrics import forgetting
    >>> R = [[0.9, 0.1, 0.1], [0.95, 0.8, 0.1], [0.6, 0.7, 0.9]]
    >>> round(forgetting(R), 4)
    0.225
    >>> round(forgetting(R, reference="first"), 4)
    0.2
    """
    if reference not in ("max", "first"):
        raise ValueError(f"reference must be 'max' or 'first', got {reference!r}.")
    R = _check_matrix(R)
    n_tasks = R.shape[0]
    if n_tasks == 1:
        return 0.0
    if reference == "first":
        before = np.diag(R)[:-1]
    else:
        seen = np.tri(n_tasks - 1, dtype=bool)
        before = np.where(seen, R[:-1, :-1], -np.inf).max(axis=0)
    return float(np.mean(before - R[-1, :-1]))


def backward_transfer(R):
    """Backward transfer (Lopez-Paz and Ranzato [1]_).

    :math:`\\mathrm{BWT} = \\frac{1}{T-1} \\sum_{i=0}^{T-2} (R_{T-1, i} - R_{i, i})`:
    how much training the later tasks changed the score on each earlier task.
    Negative values mean forgetting; it equals
    ``-forgetting(R, reference="first")``. By convention a single task
    (``T = 1``) gives ``0.0``.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    Returns
    -------
    score : float
        Backward transfer.

    References
    ----------
    .. [1] D. Lopez-Paz and M. Ranzato, "Gradient Episodic Memory for Continual
       Learning", NeurIPS 2017.

    Examples
    --------
    >>> from skcl.metrics import backward_transfer
    >>> R = [[0.9, 0.1], [0.6, 0.8]]
    >>> round(backward_transfer(R), 4)
    -0.3
    """
    R = _check_matrix(R)
    if R.shape[0] == 1:
        return 0.0
    return float(np.mean(R[-1, :-1] - np.diag(R)[:-1]))


def one_step_backward_transfer(R):
    """One-step backward transfer: the change on each task from the next one.

    :math:`\\frac{1}{T-1} \\sum_{i=0}^{T-2} (R_{i+1, i} - R_{i, i})`: how
    much training task ``i + 1`` changed the score on task ``i`` (Kumar,
    Marklund and Van Roy [1]_, Table 2). Beside :func:`backward_transfer`,
    which measures the change by the end of the stream, it separates the
    forgetting of one task from the slow erosion over many. By convention a
    single task (``T = 1``) gives ``0.0``.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    Returns
    -------
    score : float
        One-step backward transfer.

    References
    ----------
    .. [1] S. Kumar, H. Marklund and B. Van Roy, "Maintaining Plasticity in
       Continual Learning via Regenerative Regularization", CoLLAs 2025.

    Examples
    --------
    >>> from skcl.metrics import one_step_backward_transfer
    >>> R = [[0.9, 0.2, 0.1], [0.7, 0.8, 0.3], [0.5, 0.6, 0.95]]
    >>> round(one_step_backward_transfer(R), 4)
    -0.2
    """
    R = _check_matrix(R)
    if R.shape[0] == 1:
        return 0.0
    return float(np.mean(np.diag(R, -1) - np.diag(R)[:-1]))


def forward_transfer(R, b):
    """Forward transfer (Lopez-Paz and Ranzato [1]_).

    :math:`\\mathrm{FWT} = \\frac{1}{T-1} \\sum_{i=1}^{T-1} (R_{i-1, i} - b_i)`:
    how much training the earlier tasks changed the score on each task before
    it is trained, compared with the score ``b_i`` at initialization (see
    :func:`~skcl.metrics.initial_scores`). By convention a single task
    (``T = 1``) gives ``0.0``.

    Parameters
    ----------
    R : array-like of shape (n_tasks, n_tasks)
        Accuracy matrix, ``R[t, i]`` is the score on task ``i`` after training
        task ``t``.

    b : array-like of shape (n_tasks,)
        Score on each task before any training.

    Returns
    -------
    score : float
        Forward transfer.

    References
    ----------
    .. [1] D. Lopez-Paz and M. Ranzato, "Gradient Episodic Memory for Continual
       Learning", NeurIPS 2017.

    Examples
    --------
    >>> from skcl.metrics import forward_transfer
    >>> R = [[0.9, 0.3, 0.2], [0.8, 0.9, 0.4], [0.7, 0.8, 0.9]]
    >>> round(forward_transfer(R, b=[0.1, 0.1, 0.1]), 4)
    0.25
    """
    R = _check_matrix(R)
    try:
        b = np.asarray(b, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"b must be an array of numbers: {exc}") from exc
    if b.shape != (R.shape[0],):
        raise ValueError(
            f"b must have shape ({R.shape[0]},), one score per task of R, got shape "
            f"{b.shape}."
        )
    if not np.isfinite(b).all():
        raise ValueError("b must contain only finite values (no NaN or inf).")
    if R.shape[0] == 1:
        return 0.0
    return float(np.mean(np.diag(R, k=1) - b[1:]))
