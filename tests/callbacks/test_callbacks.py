import numpy as np
import pytest
import torch
from _tolerance import forward_operations, tolerance

from skcl import ContinualClassifier, ContinualRegressor
from skcl.callbacks import PrequentialScore, TaskMonitor
from skcl.metrics import TaskAccuracyDisplay, accuracy_matrix


def fitted(callback, X, y, t, **params):
    clf = ContinualClassifier(
        max_epochs=2, lr=0.05, batch_size=10, random_state=0, callbacks=[callback]
    )
    clf.set_params(**params).fit(X, y, task_id=t)
    return clf, dict(clf.net_.callbacks_)[type(callback).__name__]


def test_task_monitor_ends_each_task_on_the_accuracy_matrix(digits_stream):
    X, y, t = digits_stream
    clf, monitor = fitted(TaskMonitor(X, y, t), X, y, t)
    assert monitor.tasks_ == [0, 1, 2]
    assert monitor.training_task_ == [0, 0, 1, 1, 2, 2]
    assert monitor.steps_ == [30, 60, 90, 120, 150, 180]
    R = accuracy_matrix(clf, X, y, t)
    ends_of_tasks = np.array(monitor.scores_)[1::2]
    np.testing.assert_allclose(ends_of_tasks, R, atol=1 / 300)


def test_task_monitor_every_n_batches_and_forgetting_shows_in_the_loss(digits_stream):
    X, y, t = digits_stream
    _, monitor = fitted(TaskMonitor(X, y, t, every=7), X, y, t, max_epochs=3)
    assert monitor.steps_ == list(range(7, 271, 7))
    losses = np.array(monitor.losses_)
    task_0 = losses[:, 0]
    end_of_task_0 = task_0[np.array(monitor.training_task_) == 0][-1]
    assert task_0[-1] > 2 * end_of_task_0


def test_task_monitor_regressor():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, 2.0, -1.0]
    t = np.repeat([0, 1], 60)
    reg = ContinualRegressor(max_epochs=5, callbacks=[TaskMonitor(X, y, t)])
    monitor = dict(reg.fit(X, y, task_id=t).net_.callbacks_)["TaskMonitor"]
    assert np.array(monitor.scores_).shape == (10, 2)
    # R^2 = 1 - SS_res / SS_tot: predictions off by one float32 forward pass
    # (delta) move it by at most 2 * delta * mean|residual| / var(y).
    pred = reg.predict(X[60:])
    delta = tolerance(forward_operations(reg.module_), pred, torch.float32)
    atol = 2 * delta * np.abs(y[60:] - pred).mean() / y[60:].var()
    assert monitor.scores_[-1][1] == pytest.approx(reg.score(X[60:], y[60:]), abs=atol)


def test_task_monitor_rejects_bad_input(digits_stream):
    X, y, t = digits_stream
    with pytest.raises(ValueError, match="every"):
        fitted(TaskMonitor(X, y, t, every=0), X, y, t)
    with pytest.raises(ValueError, match="labels"):
        fitted(TaskMonitor(X, y + 100, t), X, y, t)


def test_prequential_score_of_a_frozen_network_is_its_accuracy(digits_stream):
    X, y, t = digits_stream
    clf, preq = fitted(PrequentialScore(), X, y, t, lr=1e-12, max_epochs=1)
    assert len(preq.scores_) == 90 and preq.training_task_[::30] == [0, 1, 2]
    with clf.use_snapshot("initial"):
        initial = [clf.score(X[t == k], y[t == k]) for k in range(3)]
    # A task's mean of its 30 batch accuracies against one accuracy over the
    # same 300 rows: the float64 roundings of the 30 additions and the division.
    atol = tolerance(len(preq.scores_) // 3 + 1, initial)
    np.testing.assert_allclose(preq.task_means(), initial, rtol=0, atol=atol)


def test_display_from_monitor(digits_stream):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X, y, t = digits_stream
    _, monitor = fitted(TaskMonitor(X, y, t, every=10), X, y, t)
    display = TaskAccuracyDisplay.from_monitor({"naive": monitor}, metric="loss")
    assert display.lines_.shape == (1, 3)
    start = display.lines_[0, 2].get_xdata()[0]
    assert start == monitor.steps_[monitor.training_task_.index(2)]
    assert display.ax_[0].get_ylabel() == "Loss"
