import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from skcl.datasets import make_split_stream


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


def test_split_mnist_protocol(digits):
    X, y = digits
    Xs, ys, task_id = make_split_stream(X, y)
    assert len(ys) == len(y)
    for t in range(5):
        assert set(ys[task_id == t]) == {2 * t, 2 * t + 1}
        rows = np.flatnonzero(np.isin(y, [2 * t, 2 * t + 1]))
        np.testing.assert_array_equal(Xs[task_id == t], X[rows])
    assert np.all(np.diff(task_id) >= 0)


def test_split_partitions_the_classes(digits):
    X, y = digits
    _, ys, task_id, task_classes = make_split_stream(
        X, y, classes_per_task=[4, 3, 3], return_task_classes=True
    )
    seen = [set(ys[task_id == t]) for t in range(3)]
    assert [len(s) for s in seen] == [4, 3, 3]
    assert set().union(*seen) == set(range(10))
    assert sum(len(s) for s in seen) == 10
    assert [set(c.tolist()) for c in task_classes] == seen
    np.testing.assert_array_equal(np.sort(ys), np.sort(y))


def test_relabel_maps_back_through_task_classes(digits):
    X, y = digits
    _, ys_orig, _ = make_split_stream(X, y, class_order="random", random_state=0)
    _, ys, task_id, task_classes = make_split_stream(
        X,
        y,
        relabel=True,
        class_order="random",
        return_task_classes=True,
        random_state=0,
    )
    assert set(ys) == {0, 1}
    restored = np.array([task_classes[t][k] for t, k in zip(task_id, ys, strict=True)])
    np.testing.assert_array_equal(restored, ys_orig)


def test_class_order_random_is_seeded_and_explicit_order_is_kept(digits):
    X, y = digits
    a = make_split_stream(
        X, y, class_order="random", return_task_classes=True, random_state=1
    )[3]
    b = make_split_stream(
        X, y, class_order="random", return_task_classes=True, random_state=1
    )[3]
    assert [c.tolist() for c in a] == [c.tolist() for c in b]
    order = [9, 3, 1, 0]
    _, ys, task_id = make_split_stream(X, y, class_order=order)
    assert set(ys[task_id == 0]) == {9, 3}
    assert set(ys[task_id == 1]) == {1, 0}
    assert len(ys) == np.isin(y, order).sum()


def test_n_tasks_with_classes_per_task_uses_first_classes(digits):
    X, y = digits
    _, ys, task_id = make_split_stream(X, y, n_tasks=2, classes_per_task=3)
    assert set(ys) == set(range(6))
    assert set(ys[task_id == 1]) == {3, 4, 5}


def test_split_keeps_dataframes_and_string_labels():
    X = pd.DataFrame({"a": range(6)}, index=[10, 11, 12, 13, 14, 15])
    y = np.array(["cat", "dog", "ant", "cat", "bee", "ant"])
    Xs, ys, task_id = make_split_stream(X, y, n_tasks=2)
    assert isinstance(Xs, pd.DataFrame)
    assert Xs.index.tolist() == list(range(6))
    assert Xs["a"].tolist() == [2, 4, 5, 0, 1, 3]
    assert ys.tolist() == ["ant", "bee", "ant", "cat", "dog", "cat"]
    assert task_id.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "y, kwargs, match",
    [
        ([0, 0, 0, 0], {}, "at least 2 classes"),
        ([0, 1, 2, 3], {"n_tasks": 5}, "n_tasks=5 is more tasks"),
        ([0, 1, 2, 3], {"n_tasks": 3}, "cannot be split evenly"),
        ([0, 1, 2, 0], {}, "classes_per_task=2"),
        ([0, 1, 2, 3], {"classes_per_task": 3, "n_tasks": 2}, "needs 6 classes"),
        ([0, 1, 2, 3], {"classes_per_task": [2, 3]}, "needs 5 classes"),
        ([0, 1, 2, 3], {"classes_per_task": [2, 2], "n_tasks": 3}, "does not match"),
        ([0, 1, 2, 3], {"classes_per_task": 0}, "classes_per_task must be >= 1"),
        ([0, 1, 2, 3], {"class_order": [0, 7]}, r"class_order contains .*\[7\]"),
        ([0, 1, 2, 3], {"class_order": [0, 0]}, "must not repeat"),
        ([0, 1, 2, 3], {"class_order": "sorted"}, "class_order must be None"),
    ],
)
def test_split_errors(y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_split_stream(np.zeros((4, 2)), y, **kwargs)


def test_split_error_on_length_mismatch():
    with pytest.raises(ValueError, match="y has 3 entries"):
        make_split_stream(np.zeros((4, 2)), [0, 1, 1])
