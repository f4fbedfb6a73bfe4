import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits


@pytest.fixture(autouse=True)
def _seed():
    """Seed the global generators: every test starts from the same state."""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def one_torch_thread():
    """Tiny networks train fastest on one thread (CI has two cores); restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def digits_stream():
    """Three tasks of 300 digits each: the identity and two pixel permutations."""
    digits = load_digits()
    X = (digits.data[:300] / 16).astype(np.float32)
    y = digits.target[:300]
    rng = np.random.RandomState(0)
    perms = [np.arange(64)] + [rng.permutation(64) for _ in range(2)]
    Xs = np.concatenate([X[:, p] for p in perms])
    return Xs, np.tile(y, 3), np.repeat([0, 1, 2], len(X))


@pytest.fixture
def benchmark_script(monkeypatch):
    """Load a script of ``benchmarks/`` as a module of its own name (as its
    joblib workers import it), fresh for each test."""

    def load(name):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load
