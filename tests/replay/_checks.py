"""Checks every replay strategy passes, on the digits fixtures of conftest."""

import copy
import pickle

import numpy as np
import pytest
import torch
from _tolerance import tolerance, training_operations
from skorch.callbacks import Callback

import skcl
from skcl import ContinualClassifier
from skcl.metrics import accuracy_matrix, forgetting


def make(replay=None, **params):
    defaults = dict(
        module__hidden_sizes=(16,), batch_size=20, max_epochs=2, lr=0.05,
        random_state=0,
    )  # fmt: skip
    if "module" in params:  # a module of its own
        del defaults["module__hidden_sizes"]
    return ContinualClassifier(replay=replay, **{**defaults, **params})


def memory_tensors(clf):
    memory = clf.replay_.memory_
    return {n: getattr(memory, n) for n in memory._fields}


def assert_same_memory(a, b):
    for name, tensor in memory_tensors(a).items():
        other = memory_tensors(b)[name]
        assert (tensor is None) == (other is None), name
        if tensor is not None:
            assert torch.equal(tensor, other), name


def assert_same_network(a, b):
    for x, z in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
        assert torch.equal(x, z)


def check_fit_equals_partial_fit(replay, stream):
    X, y, t = stream
    fitted = make(clone_of(replay)).fit(X, y, task_id=t)
    partial = make(clone_of(replay))
    for k in np.unique(t):
        partial.partial_fit(X[t == k], y[t == k], task_id=k, classes=np.arange(10))
    for a, b in zip(fitted.snapshots_, partial.snapshots_, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert_same_memory(fitted, partial)
    return fitted, partial


def check_random_state_seeds_the_memory(replay, stream):
    X, y, t = stream
    a, b = (make(clone_of(replay)).fit(X, y, task_id=t) for _ in range(2))
    assert_same_memory(a, b)
    assert_same_network(a, b)
    c = make(clone_of(replay), random_state=1).fit(X, y, task_id=t)
    assert not torch.equal(a.replay_.memory_.X, c.replay_.memory_.X)


def check_save_load_and_pickle_bitwise(replay, stream, path):
    X, y, t = stream
    clf = make(clone_of(replay)).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    skcl.save(clf, path)
    for copy_ in (skcl.load(path), pickle.loads(pickle.dumps(clf))):
        assert_same_memory(clf, copy_)
        copy_.partial_fit(X[t == 2], y[t == 2], task_id=2)
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert_same_memory(clf, copy_)
    np.testing.assert_array_equal(clf.predict_proba(X), copy_.predict_proba(X))
    return clf


class FailInTask1(Callback):
    """Raise at the end of task 1's ``at``-th epoch (its history entries)."""

    def __init__(self, at=2):
        self.at = at

    def on_epoch_end(self, net, **kwargs):
        if [h["task"] for h in net.history].count(1) == self.at:
            raise RuntimeError("failing in task 1")


def check_failed_chunk_rolls_back_bitwise(replay, stream, at=2):
    """The memory and plug-in change during the chunk; the error undoes it."""
    X, y, t = stream
    clf = make(clone_of(replay), callbacks=[FailInTask1(at)])
    clf.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=np.arange(10))
    before = copy.deepcopy(clf)
    with pytest.raises(RuntimeError, match="failing"):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert_same_memory(clf, before)
    assert_same_network(clf, before)
    assert clf.tasks_ == [0] and clf.replay_.memory_ is not before.replay_.memory_
    return clf, before


def check_forgets_less_than_naive(replay, margin=0.2, **params):
    """On the class-split digits (5 tasks of 2 digits), a fixed seed."""
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "split", n_tasks=5, random_state=0
    )
    params = {
        "lr": 0.05, "batch_size": 20, "max_epochs": 2, "random_state": 0,
        "momentum": 0.8, "module__hidden_sizes": (64,), **params,
    }  # fmt: skip
    naive = ContinualClassifier(**params).fit(X, y, task_id=t)
    clf = ContinualClassifier(replay=replay, **params).fit(X, y, task_id=t)
    R0 = accuracy_matrix(naive, X_test, y_test, t_test)
    R = accuracy_matrix(clf, X_test, y_test, t_test)
    assert forgetting(R) < forgetting(R0) - margin, (forgetting(R), forgetting(R0))
    assert R[-1].mean() > R0[-1].mean() + margin, (R[-1].mean(), R0[-1].mean())
    return R, R0


def clone_of(replay):
    from sklearn.base import clone

    return clone(replay)


def check_stacks_like_alone(replay, stream):
    """Two learning rates train as one stack (float64), each as alone."""
    from sklearn.base import clone
    from torch import nn

    from skcl._engine._fit import fit_together

    X, y, t = stream
    X = X.astype(np.float64)
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    base = make(clone_of(replay), module=module)
    estimators = [clone(base).set_params(lr=lr) for lr in (0.05, 0.1)]
    together, reason = fit_together(estimators, X, y, t)
    assert reason is None
    for stacked, alone in zip(together, estimators, strict=True):
        alone.fit(X, y, task_id=t)
        assert_same_memory(stacked, alone)
        got, expected = (
            torch.cat([p.detach().ravel() for p in e.module_.parameters()])
            for e in (stacked, alone)
        )
        # Each sample (the memory's too, at most 4 batches' worth) is trained
        # by both at every epoch, in another order of roundings.
        samples = 4 * len(X) * alone.max_epochs
        bound = tolerance(training_operations(alone.module_, samples), expected)
        torch.testing.assert_close(got, expected, atol=bound, rtol=0)
