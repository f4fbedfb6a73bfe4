"""Accuracy matrix and initial scores from a fitted estimator's snapshots."""

import functools
import warnings

import numpy as np
from sklearn.metrics import check_scoring
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from .._tasks import check_task_id, task_order

_TASK_METHODS = frozenset(
    {"predict", "predict_proba", "predict_log_proba", "decision_function", "score"}
)


class _TaskBoundEstimator:
    """View of a fitted estimator whose prediction methods get ``task_id=task``.

    scikit-learn scorers call ``estimator.predict(X)``; this view lets any scorer
    score one task of a multi-head model. Every other attribute is the
    estimator's own.
    """

    def __init__(self, estimator, task):
        self.estimator = estimator
        self.task = task

    def __getattr__(self, name):
        attr = getattr(self.estimator, name)
        if name not in _TASK_METHODS:
            return attr

        @functools.wraps(attr)
        def method(*args, **kwargs):
            return attr(*args, task_id=self.task, **kwargs)

        return method

    def __sklearn_is_fitted__(self):
        return True


def _score_snapshots(
    estimator, X, y, task_id, *, snapshots, scoring, include_untrained
):
    """Score every snapshot of ``snapshots`` on every task of the held-out data.

    Returns the scores, of shape (len(snapshots), n_columns), and the task ids
    of the columns: the trained tasks in training order, then, if
    ``include_untrained``, the held-out tasks never trained, in order of first
    appearance.
    """
    if scoring is not None and not (isinstance(scoring, str) or callable(scoring)):
        raise ValueError(
            "scoring must be None, the name of a scikit-learn scorer or a callable "
            f"scorer(estimator, X, y) returning one number, got {scoring!r}."
        )
    if np.ndim(task_id) != 1:
        raise ValueError(
            f"task_id must be a 1-D array of task ids, got shape {np.shape(task_id)}."
        )
    check_consistent_length(X, y, task_id)
    task_id = check_task_id(task_id, len(task_id))
    trained = list(estimator.tasks_)
    if not trained:
        raise ValueError("The estimator has not trained any task yet.")
    held_out = task_order(task_id)
    missing = [task for task in trained if not np.any(task_id == task)]
    if missing:
        raise ValueError(
            f"task_id has no samples of the trained task(s) {missing}: every trained "
            f"task needs held-out samples. Trained tasks, in order: {trained}; tasks "
            f"in task_id: {held_out}."
        )
    untrained = [task for task in held_out if task not in trained]
    if untrained and not include_untrained:
        warnings.warn(
            f"Ignoring the samples of task(s) {untrained}, which the estimator never "
            "trained. Pass include_untrained=True to score them in extra columns.",
            UserWarning,
            stacklevel=4,
        )
    columns = trained + untrained if include_untrained else trained
    if scoring is None and _scores_accuracy(estimator):
        return _accuracies(estimator, X, y, task_id, snapshots, columns), columns
    scorer = check_scoring(estimator, scoring=scoring)
    subsets = []
    for task in columns:
        indices = np.flatnonzero(task_id == task)
        subsets.append(
            (
                _TaskBoundEstimator(estimator, task),
                _safe_indexing(X, indices),
                _safe_indexing(y, indices),
            )
        )
    scores = np.empty((len(snapshots), len(columns)))
    for row, snapshot in enumerate(snapshots):
        with estimator.use_snapshot(snapshot):
            for col, (bound, X_task, y_task) in enumerate(subsets):
                scores[row, col] = scorer(bound, X_task, y_task)
    return scores, columns


def _scores_accuracy(estimator):
    """Whether ``estimator.score`` is the continual classifier's accuracy."""
    from .._classifier import ContinualClassifier

    return (
        isinstance(estimator, ContinualClassifier)
        and type(estimator).score is ContinualClassifier.score
    )


def _accuracies(estimator, X, y, task_id, snapshots, columns):
    """Each snapshot's accuracy on each task of ``columns``: one prediction each."""
    rows = np.flatnonzero(np.isin(task_id, columns))
    X, y, task_id = _safe_indexing(X, rows), np.asarray(y)[rows], task_id[rows]
    values, inverse = np.unique(task_id, return_inverse=True)
    column = np.array([columns.index(v) for v in values])[inverse]
    counts = np.bincount(column, minlength=len(columns))
    scores = np.empty((len(snapshots), len(columns)))
    inputs = estimator._forward_inputs(X, task_id)  # validated once
    for row, snapshot in enumerate(snapshots):
        with estimator.use_snapshot(snapshot):
            index = estimator._forward_tensor(*inputs).argmax(dim=1).numpy()
        correct = estimator.classes_[index] == y
        scores[row] = np.bincount(column, weights=correct, minlength=len(columns))
        scores[row] /= counts
    return scores


def _unwrap(estimator, X):
    """Return the continual estimator inside ``estimator`` and ``X`` as it sees it.

    A fitted search answers for its refitted ``best_estimator_``. The snapshots
    belong to the continual estimator at the end of a pipeline; the
    preprocessing before it does not change between tasks, so ``X`` goes
    through it once.
    """
    if isinstance(estimator, BaseSearchCV):
        check_is_fitted(estimator)
        if not hasattr(estimator, "best_estimator_"):
            raise ValueError(
                f"{type(estimator).__name__} was fitted with refit=False and has "
                "no best_estimator_ to score; fit it with refit=True."
            )
        return _unwrap(estimator.best_estimator_, X)
    if isinstance(estimator, Pipeline):
        check_is_fitted(estimator)
        return _unwrap(estimator[-1], estimator[:-1].transform(X))
    return estimator, X


def _accuracy_matrix(estimator, X, y, task_id, *, scoring, include_untrained):
    estimator, X = _unwrap(estimator, X)
    check_is_fitted(estimator, "tasks_")
    n_tasks = len(estimator.tasks_)
    n_snapshots = len(getattr(estimator, "snapshots_", estimator.tasks_))
    if n_snapshots != n_tasks:
        raise ValueError(
            "The accuracy matrix needs one parameter snapshot per trained task, but "
            f"the estimator kept {n_snapshots} for {n_tasks} task(s). Refit it with "
            "keep_snapshots=True."
        )
    return _score_snapshots(
        estimator,
        X,
        y,
        task_id,
        snapshots=range(n_tasks),
        scoring=scoring,
        include_untrained=include_untrained,
    )


def accuracy_matrix(estimator, X, y, task_id, *, scoring=None, include_untrained=False):
    """Score a fitted continual estimator on every task after every task.

    ``R[t, i]`` is the score on the held-out samples of task ``i`` with the
    parameters the estimator had at the end of training task ``t``. Rows and
    columns follow the training order ``estimator.tasks_``, whatever the order
    of the samples in ``task_id``. The scores come from the per-task snapshots
    (``estimator.use_snapshot(t)``), so the estimator is left unchanged. The
    prediction methods get ``task_id=`` the evaluated task, which matters for
    multi-head models.

    Parameters
    ----------
    estimator : estimator object
        A fitted continual estimator with ``tasks_`` and ``use_snapshot``, that
        kept its snapshots (``keep_snapshots=True``), a fitted
        :class:`~sklearn.pipeline.Pipeline` ending with one (``X`` then goes
        through the earlier steps), or a fitted search (such as
        :class:`~skcl.model_selection.RegimeSearchCV` or
        :class:`~sklearn.model_selection.GridSearchCV`) whose refitted
        ``best_estimator_`` is one of these.

    X : array-like of shape (n_samples, n_features)
        Held-out samples of all the trained tasks.

    y : array-like of shape (n_samples,)
        Their targets.

    task_id : array-like of shape (n_samples,)
        The task of each sample. Every trained task needs samples; samples of
        tasks the estimator never trained are ignored with a ``UserWarning``,
        unless ``include_untrained=True``.

    scoring : str or callable, default=None
        Per-task score: ``None`` uses the estimator's ``score`` (accuracy for
        classifiers, R² for regressors); a string names a scikit-learn scorer
        (see :func:`sklearn.metrics.get_scorer_names`); a callable is a scorer
        ``scorer(estimator, X, y)`` returning one number.

    include_untrained : bool, default=False
        Whether to append one column per held-out task never trained, in order
        of first appearance in ``task_id``, e.g. to measure zero-shot transfer.

    Returns
    -------
    R : ndarray of shape (n_tasks, n_tasks) or (n_tasks, n_tasks + n_untrained)
        ``R[t, i]`` is the score on task ``i`` after training task ``t``.

    See Also
    --------
    initial_scores : The scores before any training.
    AccuracyMatrixDisplay : Plot the accuracy matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skcl import ContinualClassifier
    >>> from skcl.metrics import accuracy_matrix
    >>> X, y = load_digits(return_X_y=True)
    >>> X = (X / 16).astype(np.float32)
    >>> task = np.arange(len(X)) % 3
    >>> clf = ContinualClassifier(max_epochs=1, random_state=0)
    >>> clf = clf.fit(X, y, task_id=task)
    >>> accuracy_matrix(clf, X, y, task_id=task).shape
    (3, 3)
    """
    return _accuracy_matrix(
        estimator,
        X,
        y,
        task_id,
        scoring=scoring,
        include_untrained=include_untrained,
    )[0]


def initial_scores(estimator, X, y, task_id, *, scoring=None, include_untrained=False):
    """Score a fitted continual estimator's initial parameters on every task.

    ``b[i]`` is the score on the held-out samples of task ``i`` with the
    parameters the estimator had before any training
    (``estimator.use_snapshot("initial")``), the reference of
    :func:`~skcl.metrics.forward_transfer`. The entries follow the columns of
    :func:`~skcl.metrics.accuracy_matrix` for the same arguments.

    Parameters
    ----------
    estimator : estimator object
        A fitted continual estimator with ``tasks_``, ``use_snapshot`` and an
        ``initial_snapshot_`` that is not None, or a pipeline or fitted search
        around one (see :func:`accuracy_matrix`).

    X : array-like of shape (n_samples, n_features)
        Held-out samples of all the trained tasks.

    y : array-like of shape (n_samples,)
        Their targets.

    task_id : array-like of shape (n_samples,)
        The task of each sample, as in :func:`~skcl.metrics.accuracy_matrix`.

    scoring : str or callable, default=None
        Per-task score, as in :func:`~skcl.metrics.accuracy_matrix`.

    include_untrained : bool, default=False
        Whether to append one entry per held-out task never trained.

    Returns
    -------
    b : ndarray of shape (n_tasks,) or (n_tasks + n_untrained,)
        Score on each task before any training.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skcl import ContinualClassifier
    >>> from skcl.metrics import accuracy_matrix, forward_transfer, initial_scores
    >>> X, y = load_digits(return_X_y=True)
    >>> X = (X / 16).astype(np.float32)
    >>> task = np.arange(len(X)) % 3
    >>> clf = ContinualClassifier(max_epochs=1, random_state=0)
    >>> clf = clf.fit(X, y, task_id=task)
    >>> b = initial_scores(clf, X, y, task_id=task)
    >>> R = accuracy_matrix(clf, X, y, task_id=task)
    >>> bool(forward_transfer(R, b) > 0)
    True
    """
    estimator, X = _unwrap(estimator, X)
    check_is_fitted(estimator, "tasks_")
    if getattr(estimator, "initial_snapshot_", None) is None:
        raise ValueError(
            "The estimator kept no initial parameters (initial_snapshot_ is None). "
            "Refit it with keep_snapshots=True."
        )
    scores, _ = _score_snapshots(
        estimator,
        X,
        y,
        task_id,
        snapshots=["initial"],
        scoring=scoring,
        include_untrained=include_untrained,
    )
    return scores[0]
