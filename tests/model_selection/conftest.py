import numpy as np
import pytest
from sklearn.datasets import load_digits

from skcl import ContinualClassifier


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Small networks train fastest with one thread."""


@pytest.fixture(scope="session")
def tiny_stream():
    """Two tasks of 150 digits: the images, then their pixels reversed."""
    digits = load_digits()
    X = (digits.data[:150] / 16).astype(np.float32)
    y = digits.target[:150]
    return np.vstack([X, X[:, ::-1]]), np.tile(y, 2), np.repeat([0, 1], len(X))


@pytest.fixture(scope="session")
def make_classifier():
    """Factory of fast continual classifiers: one epoch per task, 16 hidden units."""

    def make(**params):
        defaults = {
            "max_epochs": 1,
            "batch_size": 10,
            "lr": 0.1,
            "module__hidden_sizes": (16,),
            "random_state": 0,
        }
        return ContinualClassifier(**{**defaults, **params})

    return make
