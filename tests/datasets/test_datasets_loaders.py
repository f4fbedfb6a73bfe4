import numpy as np
import pytest

from skcl.datasets import load_diabetes_stream, load_digits_stream, load_wine_stream


def _columns_multiset(M):
    cols, counts = np.unique(M.T, axis=0, return_counts=True)
    return cols, counts


@pytest.mark.parametrize("kind", ["permuted", "rotated", "split"])
def test_digits_stream_arrays(kind):
    X_tr, X_te, y_tr, y_te, t_tr, t_te = load_digits_stream(kind, random_state=0)
    n_tasks = 5
    assert X_tr.dtype == X_te.dtype == np.float32
    assert X_tr.shape[1] == X_te.shape[1] == 64
    assert 0 <= X_tr.min() and X_tr.max() <= 1 and X_tr.max() > 0.9
    assert y_tr.dtype == np.int64
    assert len(X_tr) == len(y_tr) == len(t_tr)
    assert len(X_te) == len(y_te) == len(t_te)
    assert sorted(set(t_tr)) == sorted(set(t_te)) == list(range(n_tasks))
    assert np.all(np.diff(t_tr) >= 0) and np.all(np.diff(t_te) >= 0)
    expected_rows = 1797 if kind == "split" else 1797 * n_tasks
    assert len(X_tr) + len(X_te) == expected_rows
    test_share = len(X_te) / expected_rows
    assert 0.24 < test_share < 0.26


def test_digits_stream_is_deterministic():
    a = load_digits_stream("rotated", n_tasks=3, random_state=7)
    b = load_digits_stream("rotated", n_tasks=3, random_state=7)
    c = load_digits_stream("rotated", n_tasks=3, random_state=8)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_digits_permuted_train_and_test_share_permutations():
    X_tr, X_te, *_, t_tr, t_te = load_digits_stream(
        "permuted", n_tasks=3, random_state=1
    )
    base = np.vstack([X_tr[t_tr == 0], X_te[t_te == 0]])
    assert not (set(map(bytes, X_tr[t_tr == 0])) & set(map(bytes, X_te[t_te == 0])))
    for t in (1, 2):
        stacked = np.vstack([X_tr[t_tr == t], X_te[t_te == t]])
        assert not np.array_equal(stacked, base)
        for u, v in zip(
            _columns_multiset(stacked), _columns_multiset(base), strict=True
        ):
            np.testing.assert_array_equal(u, v)


def test_digits_split_tasks_hold_the_same_classes():
    _, _, y_tr, y_te, t_tr, t_te = load_digits_stream(
        "split", n_tasks=5, class_order="random", random_state=2
    )
    for t in range(5):
        assert set(y_tr[t_tr == t]) == set(y_te[t_te == t])
        assert len(set(y_tr[t_tr == t])) == 2


def test_digits_builder_parameters_pass_through():
    _, _, y_tr, _, t_tr, _ = load_digits_stream("split", relabel=True, random_state=0)
    assert set(y_tr) == {0, 1}
    *_, t_tr, t_te = load_digits_stream("rotated", angles=[0, 45], random_state=0)
    assert set(t_tr) == set(t_te) == {0, 1}


def test_digits_stream_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        load_digits_stream("shuffled")
    with pytest.raises(ValueError, match="n_tasks must be >= 1"):
        load_digits_stream(n_tasks=0)
    with pytest.raises(ValueError, match="more tasks than there are classes"):
        load_digits_stream("split", n_tasks=11)


@pytest.mark.parametrize(
    "by, kwargs, n_tasks", [("sex", {}, 2), ("age", {}, 3), ("bmi", {"n_tasks": 4}, 4)]
)
def test_diabetes_stream(by, kwargs, n_tasks):
    X_tr, X_te, y_tr, y_te, t_tr, t_te = load_diabetes_stream(
        by, random_state=0, **kwargs
    )
    assert X_tr.shape[1] == 9 and X_tr.dtype == np.float32
    assert y_tr.dtype == np.float32
    assert 25 <= min(y_tr.min(), y_te.min()) and max(y_tr.max(), y_te.max()) <= 346
    assert len(X_tr) + len(X_te) == 442
    assert sorted(set(t_tr)) == sorted(set(t_te)) == list(range(n_tasks))
    assert np.all(np.diff(t_tr) >= 0)


def test_wine_stream():
    X_tr, X_te, y_tr, y_te, t_tr, t_te = load_wine_stream(n_tasks=2, random_state=0)
    assert X_tr.shape[1] == 12 and X_tr.dtype == np.float32
    assert y_tr.dtype == np.int64 and set(y_tr) == {0, 1, 2}
    assert len(X_tr) + len(X_te) == 178
    assert sorted(set(t_tr)) == sorted(set(t_te)) == [0, 1]
    assert set(y_te) == {0, 1, 2}
    a = load_wine_stream("proline", random_state=3)
    b = load_wine_stream("proline", random_state=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_tabular_stream_errors():
    with pytest.raises(ValueError, match="by must be one of"):
        load_wine_stream("colour")
    with pytest.raises(ValueError, match='n_tasks must be None or 2 for by="sex"'):
        load_diabetes_stream("sex", n_tasks=3)
    with pytest.raises(TypeError, match="n_tasks must be an int"):
        load_diabetes_stream("age", n_tasks="3")
