"""Shared machinery of the task-aware splitters."""

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state, indexable
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples

from .._tasks import check_task_id, task_order


def _resolve_task_id(task_id, groups, n_samples, splitter):
    """Return the task of each sample from ``task_id`` or its alias ``groups``."""
    if task_id is None and groups is None:
        raise ValueError(
            f"{splitter} splits every task, but got no task ids: pass them as "
            "split(X, y, task_id=task_id), or, in a scikit-learn search without "
            "metadata routing, as groups: search.fit(X, y, task_id=t, groups=t). "
            "For data that are a single task, pass task_id=0 or use "
            "StratifiedKFold."
        )
    if task_id is None:
        task_id = groups
    elif groups is not None and not np.array_equal(
        np.asarray(task_id), np.asarray(groups)
    ):
        raise ValueError(
            "groups and task_id were both given but differ: groups is an alias of "
            "task_id for the task-aware splitters; pass only one of them."
        )
    return check_task_id(task_id, n_samples)


class _TaskSplitter(BaseCrossValidator):
    """Split every task with its own splitter and join the folds across tasks.

    Subclasses define ``n_splits`` and ``_task_splitter(stratified, rng)``, the
    scikit-learn splitter applied to the samples of one task.
    """

    __metadata_request__split = {"groups": True, "task_id": True}  # noqa: RUF012

    def split(self, X, y=None, groups=None, task_id=None):
        """Generate indices to split the data into training and test sets.

        Every fold holds out part of every task, so that a continual estimator
        trained on the training indices has seen every task and can be scored
        on all of them with the test indices. Indices come in increasing order,
        so the training set keeps the tasks in the order of the stream.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,), default=None
            The targets; a classification target stratifies each task's split
            when ``stratify=True``.
        groups : array-like of shape (n_samples,), default=None
            Alias of ``task_id``, so that scikit-learn's searches pass the task
            ids to the splitter without metadata routing
            (``search.fit(X, y, task_id=t, groups=t)``).
        task_id : array-like of shape (n_samples,), default=None
            The task of each sample; routed here by scikit-learn when metadata
            routing is enabled. One of ``task_id`` and ``groups`` is
            required (``task_id=0`` makes the data a single task).

        Yields
        ------
        train : ndarray
            The training set indices for that split.
        test : ndarray
            The testing set indices for that split.

        Raises
        ------
        ValueError
            If neither ``task_id`` nor ``groups`` is given.
        """
        X, y = indexable(X, y)
        task_id = _resolve_task_id(
            task_id, groups, _num_samples(X), type(self).__name__
        )
        stratified = (
            self.stratify
            and y is not None
            and type_of_target(y) in ("binary", "multiclass")
        )
        rng = check_random_state(self.random_state)
        per_task = []
        for task in task_order(task_id):
            rows = np.flatnonzero(task_id == task)
            labels = np.asarray(y)[rows] if stratified else None
            try:
                folds = list(self._task_splitter(stratified, rng).split(rows, labels))
            except ValueError as error:
                raise ValueError(f"Cannot split task {task!r}: {error}") from error
            per_task.append([(rows[train], rows[test]) for train, test in folds])
        for folds in zip(*per_task, strict=True):
            train, test = zip(*folds, strict=True)
            yield np.sort(np.concatenate(train)), np.sort(np.concatenate(test))

    def get_n_splits(self, X=None, y=None, groups=None, task_id=None):
        """Return the number of splitting iterations.

        Parameters
        ----------
        X, y, groups, task_id : object
            Always ignored, exist for compatibility.

        Returns
        -------
        n_splits : int
            Returns the number of splitting iterations in the cross-validator.
        """
        return self.n_splits
