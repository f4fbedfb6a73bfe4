"""Permuted and Random-label MNIST as the plasticity study builds them."""

from pathlib import Path

import numpy as np
import pytest

from skcl.datasets import fetch_mnist, iter_permuted_mnist, make_random_label_mnist

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
pytestmark = pytest.mark.skipif(
    not (MNIST / "train-labels-idx1-ubyte.gz").exists(), reason="no MNIST files"
)


@pytest.fixture(scope="module")
def mnist():
    return fetch_mnist(MNIST, download_if_missing=False, return_X_y=True)


def _source_rows(X_task, X, pixels):
    """The training rows whose pixels, permuted by ``pixels``, give ``X_task``."""
    keys = {row.tobytes(): i for i, row in enumerate(X[:, pixels])}
    return [keys.get(row.tobytes()) for row in X_task]


def test_permuted_mnist_draws_images_and_a_permutation_per_task(mnist):
    X, _, y, _ = mnist
    tasks = list(iter_permuted_mnist(MNIST, n_tasks=3, n_samples=50, random_state=0))
    assert [t for _, _, t in tasks] == [0, 1, 2]
    rng = np.random.RandomState(0)  # the same draws, by hand
    for X_task, y_task, task in tasks:
        assert X_task.shape == (50, 784) and X_task.dtype == np.float32
        pixels = np.arange(784) if task == 0 else rng.permutation(784)
        rows = np.sort(rng.choice(60000, 50, replace=False))
        np.testing.assert_array_equal(X_task, X[rows][:, pixels])
        np.testing.assert_array_equal(y_task, y[rows])
    # Tasks differ in images and in permutation.
    assert not np.array_equal(tasks[1][0], tasks[2][0])
    again = next(iter_permuted_mnist(MNIST, n_tasks=1, n_samples=50, random_state=0))
    np.testing.assert_array_equal(again[0], tasks[0][0])


def test_permuted_mnist_checks_its_sizes_before_reading(mnist):
    with pytest.raises(ValueError, match="n_samples must be at most 60000"):
        iter_permuted_mnist(MNIST, n_samples=60001)
    with pytest.raises(ValueError, match="n_tasks must be >= 1"):
        iter_permuted_mnist(MNIST, n_tasks=0)


def test_random_label_mnist_shuffles_the_labels_of_the_same_images(mnist):
    X, _, y, _ = mnist
    Xs, ys, task_id = make_random_label_mnist(
        MNIST, n_tasks=3, n_samples=120, random_state=0
    )
    assert (
        Xs.shape == (360, 784) and task_id.tolist() == [0] * 120 + [1] * 120 + [2] * 120
    )
    images = Xs[task_id == 0]
    rows = _source_rows(images, X, np.arange(784))
    assert None not in rows and len(set(rows)) == 120
    for task in range(3):
        np.testing.assert_array_equal(Xs[task_id == task], images)
        # The labels are a permutation of the images' own labels.
        np.testing.assert_array_equal(np.sort(ys[task_id == task]), np.sort(y[rows]))
    assert not np.array_equal(ys[task_id == 1], ys[task_id == 2])
