import numpy as np
import pandas as pd
import pytest

from skcl.datasets import split_by_column, train_test_split_stream


@pytest.fixture
def houses():
    rng = np.random.RandomState(0)
    n = 40
    return pd.DataFrame(
        {
            "rooms": rng.randint(1, 6, n),
            "area": rng.rand(n) * 100,
            "city": rng.choice(["Paris", "Berlin", "Oslo"], n),
            "price": rng.rand(n) * 1e5,
        }
    )


def test_column_split_keeps_every_row_once(houses):
    X, y = houses.drop(columns="price"), houses["price"]
    Xs, ys, task_id = split_by_column(X, y, "city")
    assert isinstance(Xs, pd.DataFrame)
    assert list(Xs.columns) == ["rooms", "area"]
    assert Xs.index.tolist() == list(range(40))
    original = sorted(zip(X["area"], y, strict=True))
    assert sorted(zip(Xs["area"], ys, strict=True)) == original
    cities = sorted(set(houses["city"]))
    for t, city in enumerate(cities):
        rows = houses[houses["city"] == city]
        np.testing.assert_array_equal(Xs["area"][task_id == t], rows["area"])
        np.testing.assert_array_equal(ys[task_id == t], rows["price"])
    assert np.all(np.diff(task_id) >= 0)


def test_column_split_order_and_keep_column(houses):
    X, y = houses.drop(columns="price"), houses["price"].to_numpy()
    Xs, _, task_id = split_by_column(
        X, y, "city", order=["Oslo", "Paris", "Berlin"], drop=False
    )
    assert set(Xs["city"][task_id == 0]) == {"Oslo"}
    assert set(Xs["city"][task_id == 2]) == {"Berlin"}


def test_column_split_categorical_order(houses):
    X = houses.drop(columns="price")
    X["city"] = pd.Categorical(
        X["city"], categories=["Rome", "Oslo", "Paris", "Berlin"]
    )
    Xs, _, task_id = split_by_column(X, houses["price"], "city", drop=False)
    assert [set(Xs["city"][task_id == t]) for t in range(3)] == [
        {"Oslo"},
        {"Paris"},
        {"Berlin"},
    ]


def test_column_split_quantile_bins(houses):
    X, y = houses.drop(columns="price"), houses["price"]
    Xs, _, task_id = split_by_column(X, y, "area", n_bins=4, drop=False)
    assert np.bincount(task_id).tolist() == [10, 10, 10, 10]
    area = Xs["area"].to_numpy()
    for t in range(3):
        assert area[task_id == t].max() < area[task_id == t + 1].min()


def test_column_split_arrays():
    X = np.array([[0.0, 2], [1.0, 1], [2.0, 2], [3.0, 0]])
    Xs, ys, task_id = split_by_column(X, [0, 1, 2, 3], -1)
    np.testing.assert_array_equal(Xs, [[3.0], [1.0], [0.0], [2.0]])
    assert ys.tolist() == [3, 1, 0, 2]
    assert task_id.tolist() == [0, 1, 2, 2]
    Xs, ys, task_id = split_by_column(X, [0, 1, 2, 3], ["b", "a", "b", "a"])
    np.testing.assert_array_equal(Xs, X[[1, 3, 0, 2]])
    assert task_id.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "column, kwargs, match",
    [
        ("town", {}, r"column 'town' is not a column of X; its columns are"),
        ("city", {"order": ["Paris", "Oslo"]}, "order must list every distinct"),
        ("city", {"order": ["Paris", "Oslo", "Rome"]}, "order must list"),
        ("rooms", {"n_bins": 20}, "too few distinct values"),
        ("rooms", {"n_bins": 0}, "n_bins must be >= 1"),
        ("city", {"n_bins": 2}, "column must be numeric"),
        ([0, 1], {}, "must be 1-d of length 40"),
    ],
)
def test_column_split_errors(houses, column, kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_by_column(houses, houses["price"], column, **kwargs)


def test_column_split_errors_for_arrays():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="column=2 is out of range"):
        split_by_column(X, [0, 1, 2], 2)
    with pytest.raises(ValueError, match="column must be an int index"):
        split_by_column(X, [0, 1, 2], "a")
    with pytest.raises(ValueError, match="missing values"):
        split_by_column(X, [0, 1, 2], [1.0, np.nan, 2.0])


def test_train_test_split_stream_per_task_proportions():
    rng = np.random.RandomState(0)
    task_id = np.repeat(["b", "a", "c"], [40, 80, 20])
    y = rng.randint(0, 2, task_id.size)
    X = np.arange(task_id.size)
    X_tr, X_te, y_tr, y_te, t_tr, t_te = train_test_split_stream(
        X, y, task_id, test_size=0.25, random_state=0
    )
    assert sorted(np.concatenate([X_tr, X_te]).tolist()) == X.tolist()
    for part, sizes in [(t_tr, [30, 60, 15]), (t_te, [10, 20, 5])]:
        names, first, counts = np.unique(part, return_index=True, return_counts=True)
        assert names[np.argsort(first)].tolist() == ["b", "a", "c"]
        assert counts[np.argsort(first)].tolist() == sizes
        assert (part[1:] != part[:-1]).sum() == 2
    for t in "bac":
        n_pos, n_te = y[task_id == t].sum(), (t_te == t).sum()
        expected = n_pos * n_te / (task_id == t).sum()
        assert abs(y_te[t_te == t].sum() - expected) <= 1
    np.testing.assert_array_equal(y_tr, y[X_tr])
    np.testing.assert_array_equal(t_te, task_id[X_te])


def test_train_test_split_stream_regression_and_determinism():
    X = pd.DataFrame({"x": np.arange(20.0)})
    y = np.arange(20.0)
    task_id = np.repeat([0, 1], 10)
    a = train_test_split_stream(X, y, task_id, random_state=3)
    b = train_test_split_stream(X, y, task_id, random_state=3)
    assert isinstance(a[0], pd.DataFrame)
    assert a[0].index.tolist() == list(range(len(a[0])))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert len(a[1]) == 6


def test_train_test_split_stream_errors():
    X, y = np.zeros((4, 1)), np.array([0, 1, 1, 1])
    with pytest.raises(ValueError, match="Cannot split task 0: The least populated"):
        train_test_split_stream(X, y, [0, 0, 0, 0], test_size=0.5)
    with pytest.raises(ValueError, match="task_id has 3 entries"):
        train_test_split_stream(X, y, [0, 0, 0])
    with pytest.raises(ValueError, match="stratify must be"):
        train_test_split_stream(X, y, [0, 0, 0, 0], stratify="yes")
    with pytest.raises(ValueError, match="test_size"):
        train_test_split_stream(X, y, [0, 0, 0, 0], test_size=2.0, stratify=False)
