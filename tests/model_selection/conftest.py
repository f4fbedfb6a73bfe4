import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skcl import ContinualClassifier


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small networks train fastest with one thread; restore the count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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
