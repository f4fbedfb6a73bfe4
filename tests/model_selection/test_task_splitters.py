from typing import ClassVar

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skcl.model_selection import TaskKFold, TaskShuffleSplit


@pytest.fixture
def stream():
    """Three tasks of 30, 45 and 60 samples, three classes each, shuffled rows."""
    rng = np.random.RandomState(0)
    task_id = np.repeat(["a", "b", "c"], [30, 45, 60])
    y = np.concatenate([np.tile([0, 1, 2], n) for n in (10, 15, 20)])
    X = rng.normal(size=(len(y), 3))
    return X, y, task_id


@pytest.mark.parametrize(
    "cv", [TaskKFold(5), TaskKFold(3, shuffle=True, random_state=0)], ids=repr
)
def test_kfold_partitions_every_task_and_stratifies(stream, cv):
    X, y, task_id = stream
    splits = list(cv.split(X, y, task_id=task_id))
    assert len(splits) == cv.get_n_splits() == cv.n_splits
    tests = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(y)))
    for train, test in splits:
        np.testing.assert_array_equal(np.union1d(train, test), np.arange(len(y)))
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
        for task, size in [("a", 10), ("b", 15), ("c", 20)]:
            # Every task held out in proportion 1/k, every class in equal parts.
            held = y[test][task_id[test] == task]
            expected = size / cv.n_splits
            assert np.all(np.abs(np.bincount(held, minlength=3) - expected) < 1)


def test_groups_is_an_alias_of_task_id(stream):
    X, y, task_id = stream
    cv = TaskKFold(3)
    by_task = list(cv.split(X, y, task_id=task_id))
    by_groups = list(cv.split(X, y, groups=task_id))
    both = list(cv.split(X, y, task_id, task_id=task_id))
    for a, b, c in zip(by_task, by_groups, both):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[1], c[1])
    with pytest.raises(ValueError, match=r"groups and task_id .* differ"):
        next(cv.split(X, y, groups=np.zeros(len(y)), task_id=task_id))


@pytest.mark.parametrize("cv", [TaskKFold(3), TaskShuffleSplit()], ids=repr)
def test_without_task_ids_split_raises(stream, cv):
    X, y, _ = stream
    with pytest.raises(ValueError, match=r"got no task ids: pass them as split\("):
        next(cv.split(X, y))


def test_a_scalar_task_id_makes_one_task(stream):
    X, y, _ = stream
    for (_, test), (_, expected) in zip(
        TaskKFold(3).split(X, y, task_id=0), StratifiedKFold(3).split(X, y)
    ):
        np.testing.assert_array_equal(test, expected)


def test_regression_targets_are_not_stratified(stream):
    X, _, task_id = stream
    y = np.linspace(0, 1, len(task_id))
    (_, test), *_ = TaskKFold(5, stratify=False).split(X, y, task_id=task_id)
    (_, test_auto), *_ = TaskKFold(5).split(X, y, task_id=task_id)
    np.testing.assert_array_equal(test, test_auto)
    # KFold within each task: its first fifth.
    np.testing.assert_array_equal(test, np.r_[0:6, 30:39, 75:87])


def test_shuffle_split_holds_out_test_size_of_every_task(stream):
    X, y, task_id = stream
    cv = TaskShuffleSplit(test_size=0.2, random_state=0)
    (train, test), *rest = list(cv.split(X, y, task_id=task_id))
    assert not rest and cv.get_n_splits() == 1
    assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == len(y)
    for task, size in [("a", 10), ("b", 15), ("c", 20)]:
        held = y[test][task_id[test] == task]
        np.testing.assert_array_equal(np.bincount(held), [size // 5] * 3)
    # Reproducible with an int seed, different with another.
    np.testing.assert_array_equal(next(cv.split(X, y, task_id=task_id))[1], test)
    other = TaskShuffleSplit(test_size=0.2, random_state=1)
    assert not np.array_equal(next(other.split(X, y, task_id=task_id))[1], test)
    sizes = [
        len(test) for _, test in TaskShuffleSplit(3, test_size=4).split(X, y, task_id)
    ]
    assert sizes == [12, 12, 12]


def test_a_task_too_small_to_split_is_named(stream):
    X, y, task_id = stream
    with pytest.raises(ValueError, match="Cannot split task 'a'"):
        next(TaskKFold(31, stratify=False).split(X, y, task_id=task_id))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: TaskKFold(1), "n_splits must be at least 2"),
        (lambda: TaskKFold(2.5), "n_splits must be an int"),
        (lambda: TaskKFold(3, random_state=0), "shuffle is False"),
        (lambda: TaskKFold(3, stratify="yes"), "stratify must be a bool"),
        (lambda: TaskShuffleSplit(test_size=1.5), "test_size must be"),
        (lambda: TaskShuffleSplit(0), "n_splits must be at least 1"),
    ],
)
def test_invalid_parameters_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Records the rows it trains on (X holds the row indices)."""

    trained: ClassVar[list] = []

    def __init__(self, c=1):
        self.c = c

    def fit(self, X, y):
        self.trained.append(X[:, 0].astype(int))
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.mark.parametrize("routing", [False, True])
def test_usable_as_cv_of_a_scikit_learn_search(stream, routing):
    _, y, task_id = stream
    X = np.arange(len(y), dtype=float)[:, None]
    cv = TaskKFold(3)
    RecordingClassifier.trained = []
    with sklearn.config_context(enable_metadata_routing=routing):
        search = GridSearchCV(RecordingClassifier(), {"c": [1, 2]}, cv=cv)
        if routing:  # the splitter requests task_id
            search.fit(X, y, task_id=task_id)
        else:
            search.fit(X, y, groups=task_id)
    expected = [train for train, _ in cv.split(X, y, task_id=task_id)] * 2
    for trained, train in zip(RecordingClassifier.trained, expected):
        np.testing.assert_array_equal(trained, train)
