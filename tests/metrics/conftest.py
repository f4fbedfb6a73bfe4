"""A fake continual classifier whose accuracy matrix is known exactly.

Each held-out sample is a row ``[task, k, label]`` with ``k`` in ``0..9``. After
training the task at position ``t`` of ``tasks_``, the fake predicts the label of
a sample of task ``L`` right iff ``k < 10 * scores[L][t]``, so ten samples
``k = 0..9`` of a task score exactly ``scores[L][t]``; with the initial
parameters, ``initial[L]``. It is multi-head-like: ``predict`` needs ``task_id``
and rejects samples of another task.
"""

import contextlib
from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score


class FakeContinualClassifier(ClassifierMixin, BaseEstimator):
    __metadata_request__fit: ClassVar[dict] = {"task_id": True}

    def __init__(self, *, scores=None, initial=None, keep_snapshots=True):
        self.scores = scores
        self.initial = initial
        self.keep_snapshots = keep_snapshots

    def fit(self, X, y, task_id=None):
        _, first = np.unique(task_id, return_index=True)
        self.tasks_ = np.asarray(task_id)[np.sort(first)].tolist()
        self.snapshots_ = list(self.tasks_) if self.keep_snapshots else []
        self.initial_snapshot_ = "initial" if self.keep_snapshots else None
        self.classes_ = np.unique(y)
        self.current_ = len(self.tasks_) - 1
        return self

    @contextlib.contextmanager
    def use_snapshot(self, index):
        if index != "initial" and not -len(self.tasks_) <= index < len(self.tasks_):
            raise IndexError(index)
        previous = self.current_
        self.current_ = index if index == "initial" else index % len(self.tasks_)
        try:
            yield self
        finally:
            self.current_ = previous

    def predict(self, X, task_id=None):
        X = np.asarray(X, dtype=object)
        if task_id is None or any(task != task_id for task in X[:, 0]):
            raise ValueError(f"predict got task_id={task_id!r} for {set(X[:, 0])}.")
        if self.current_ == "initial":
            score = self.initial[task_id]
        else:
            score = self.scores[task_id][self.current_]
        labels = X[:, 2].astype(int)
        return np.where(X[:, 1].astype(int) < round(10 * score), labels, 1 - labels)

    def score(self, X, y, task_id=None):
        return accuracy_score(y, self.predict(X, task_id=task_id))


def _make_stream(tasks, n_per_task=10, seed=0):
    """``X``, ``y``, ``task_id``: ``n_per_task`` samples per task, ``k = j % 10``."""
    rng = np.random.default_rng(seed)
    task_id = np.repeat(np.asarray(tasks, dtype=object), n_per_task)
    k = np.tile(np.arange(n_per_task) % 10, len(tasks))
    y = rng.integers(0, 2, size=len(task_id))
    X = np.column_stack([task_id, k, y]).astype(object)
    return X, y, task_id


@pytest.fixture(scope="session")
def fake_cls():
    return FakeContinualClassifier


@pytest.fixture(scope="session")
def make_stream():
    return _make_stream


# Columns: score on each task after each of the three training steps.
SCORES = {
    10: (1.0, 0.8, 0.6),
    20: (0.5, 0.9, 0.7),
    30: (0.4, 0.5, 1.0),
    40: (0.5, 0.6, 0.4),
}
INITIAL = {10: 0.3, 20: 0.2, 30: 0.1, 40: 0.5}


def _make_fake(tasks, **params):
    """A fake with the scores above, trained on ``tasks`` in that order."""
    params = {"scores": SCORES, "initial": INITIAL, **params}
    return FakeContinualClassifier(**params).fit(*_make_stream(tasks))


@pytest.fixture(scope="session")
def make_fake():
    return _make_fake


@pytest.fixture(scope="session")
def fitted_fake():
    """A fake trained on tasks 10, 20, 30 (task 40 is never trained)."""
    return _make_fake([10, 20, 30])


@pytest.fixture(scope="session")
def expected_R():
    return np.array([[1.0, 0.5, 0.4], [0.8, 0.9, 0.5], [0.6, 0.7, 1.0]])
