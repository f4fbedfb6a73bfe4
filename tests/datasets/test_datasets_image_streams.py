import numpy as np
import pytest
from scipy import ndimage

from skcl.datasets import (
    make_permuted_stream,
    make_random_label_stream,
    make_rotated_stream,
)


@pytest.fixture
def images():
    rng = np.random.RandomState(0)
    return rng.rand(6, 5, 5).astype(np.float32), np.array([0, 1, 2, 0, 1, 2])


def test_permuted_stream_layout(images):
    X, y = images
    Xs, ys, task_id = make_permuted_stream(X.reshape(6, -1), y, 4, random_state=0)
    assert Xs.shape == (24, 25)
    assert Xs.dtype == np.float32
    assert task_id.tolist() == [t for t in range(4) for _ in range(6)]
    assert task_id.dtype.kind == "i"
    assert ys.tolist() == y.tolist() * 4


def test_permutations_are_distinct_bijections_matching_the_stream(images):
    X, y = images
    Xs, _, task_id, perms = make_permuted_stream(
        X, y, 5, return_permutations=True, random_state=1
    )
    assert Xs.shape == (30, 5, 5)
    assert perms.shape == (5, 25)
    np.testing.assert_array_equal(perms[0], np.arange(25))
    for t, perm in enumerate(perms):
        np.testing.assert_array_equal(np.sort(perm), np.arange(25))
        expected = X.reshape(6, -1)[:, perm].reshape(6, 5, 5)
        np.testing.assert_array_equal(Xs[task_id == t], expected)
    assert len({tuple(p) for p in perms}) == 5


def test_permute_first_and_determinism(images):
    X, y = images
    a = make_permuted_stream(X, y, 3, permute_first=True, random_state=2)
    b = make_permuted_stream(X, y, 3, permute_first=True, random_state=2)
    c = make_permuted_stream(X, y, 3, permute_first=True, random_state=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0][:6], X)
    assert not np.array_equal(a[0], c[0])


def test_permutations_do_not_depend_on_the_rows(images):
    X, y = images
    full = make_permuted_stream(X, y, 3, return_permutations=True, random_state=4)
    one = make_permuted_stream(
        X[:1], y[:1], 3, return_permutations=True, random_state=4
    )
    np.testing.assert_array_equal(full[3], one[3])


def test_permuted_dtype(images):
    X, y = images
    Xs = make_permuted_stream(X, y, 2, dtype=np.float16, random_state=0)[0]
    assert Xs.dtype == np.float16
    np.testing.assert_allclose(Xs[:6], X, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"X": np.zeros(6)}, ValueError, "X must have shape"),
        ({"y": np.zeros(5)}, ValueError, "y has 5 entries"),
        ({"y": np.zeros((6, 1))}, ValueError, "y must be 1-dimensional"),
        ({"n_tasks": 0}, ValueError, "n_tasks must be >= 1"),
        ({"n_tasks": 2.0}, TypeError, "n_tasks must be an int"),
        ({"dtype": "nonsense"}, TypeError, "dtype must be a numpy dtype"),
        ({"X": np.array([["a", "b"]] * 6)}, TypeError, "X must be numeric"),
    ],
)
def test_permuted_errors(kwargs, error, match):
    params = {"X": np.zeros((6, 2)), "y": np.zeros(6), "n_tasks": 2, **kwargs}
    with pytest.raises(error, match=match):
        make_permuted_stream(**params)


def test_rotation_by_0_is_identity_and_by_90_is_rot90(images):
    X, y = images
    Xs, ys, task_id = make_rotated_stream(X, y, angles=[0, 90, 180, -90])
    assert Xs.shape == (24, 5, 5)
    np.testing.assert_array_equal(Xs[task_id == 0], X)
    # scipy's cosdg/sindg are exact at multiples of 90 degrees: every output
    # pixel is one input pixel with weight exactly 1, so the equality is exact.
    for t, k in [(1, 1), (2, 2), (3, -1)]:
        np.testing.assert_array_equal(Xs[task_id == t], np.rot90(X, k, axes=(1, 2)))
    assert ys.tolist() == y.tolist() * 4


def test_rotated_flat_images_default_angles(images):
    X, y = images
    Xs, _, task_id = make_rotated_stream(X.reshape(6, 25), y, n_tasks=4)
    assert Xs.shape == (24, 25)
    assert task_id.max() == 3
    for t in range(4):
        # ndimage.rotate turns a stack plane by plane with the same affine_transform
        # call as one image: the same float32 values, exactly.
        expected = [ndimage.rotate(im, 10 * t, reshape=False, order=1) for im in X]
        np.testing.assert_array_equal(Xs[task_id == t].reshape(6, 5, 5), expected)


def test_rotated_non_square_images_need_image_shape():
    X = np.arange(2 * 12, dtype=float).reshape(2, 12)
    Xs, _, _ = make_rotated_stream(X, [0, 1], angles=[180], image_shape=(3, 4))
    np.testing.assert_array_equal(Xs[0].reshape(3, 4), np.rot90(X[0].reshape(3, 4), 2))
    with pytest.raises(ValueError, match="pass image_shape"):
        make_rotated_stream(X, [0, 1], n_tasks=2)
    with pytest.raises(ValueError, match="image_shape must be"):
        make_rotated_stream(X, [0, 1], n_tasks=2, image_shape=(3, 3))


def test_rotated_random_angles_are_seeded(images):
    X, y = images
    a = make_rotated_stream(X, y, n_tasks=3, angles="random", random_state=0)[0]
    b = make_rotated_stream(X, y, n_tasks=3, angles="random", random_state=0)[0]
    c = make_rotated_stream(X, y, n_tasks=3, angles="random", random_state=1)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rotated_keeps_integer_dtype():
    X = np.full((2, 4, 4), 200, dtype=np.uint8)
    Xs = make_rotated_stream(X, [0, 1], angles=[0, 45])[0]
    assert Xs.dtype == np.uint8
    assert Xs.max() <= 200


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"angles": [0, 10], "n_tasks": 3}, "n_tasks=3 does not match"),
        ({"angles": "spin"}, "angles must be None"),
        ({"angles": []}, "angles must be a non-empty"),
        ({"angles": [0, np.nan]}, "finite"),
        ({"images": np.zeros((2, 2, 2, 2))}, "images must have shape"),
        ({"image_shape": (2, 3)}, "does not match images"),
        ({"order": 7}, "order must be in 0 .. 5"),
    ],
)
def test_rotated_errors(kwargs, match):
    params = {"images": np.zeros((2, 3, 3)), "y": [0, 1], **kwargs}
    with pytest.raises(ValueError, match=match):
        make_rotated_stream(**params)


def test_random_labels_keep_marginal_and_inputs():
    X = np.arange(40.0).reshape(20, 2)
    y = np.repeat([0, 1, 2, 3], 5)
    Xs, ys, task_id = make_random_label_stream(X, y, 4, random_state=0)
    assert Xs.shape == (80, 2)
    for t in range(4):
        np.testing.assert_array_equal(Xs[task_id == t], X)
        np.testing.assert_array_equal(np.sort(ys[task_id == t]), y)
    labelings = {tuple(ys[task_id == t]) for t in range(4)}
    assert len(labelings) == 4
    assert tuple(y) not in labelings


def test_random_labels_first_task_and_determinism():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10) % 3
    a = make_random_label_stream(X, y, 3, shuffle_first=False, random_state=5)
    b = make_random_label_stream(X, y, 3, shuffle_first=False, random_state=5)
    np.testing.assert_array_equal(a[1][:10], y)
    np.testing.assert_array_equal(a[1], b[1])
    assert make_random_label_stream(X, y, 2, dtype=np.float32)[0].dtype == np.float32
    with pytest.raises(ValueError, match="n_tasks"):
        make_random_label_stream(X, y, -1)
