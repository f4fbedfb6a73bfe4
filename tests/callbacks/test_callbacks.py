import numpy as np
import pytest
import torch
from _tolerance import forward_operations, tolerance, training_operations
from sklearn.base import clone
from torch import nn

from skcl import ContinualClassifier, ContinualRegressor, Plugin
from skcl._engine import fit_together
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


class BeforeUpdate(Plugin):
    """Scores each incoming batch by hand with the parameters before its
    update (a per-step hook: the fit runs on the network's own autograd)."""

    def initialize(self, net):
        self.scores_ = []

    @torch.no_grad()
    def before_forward(self, net, step):
        out = net.module_(step.X)
        if step.y.dtype == torch.long:
            self.scores_.append(int((out.argmax(1) == step.y).sum()) / len(step.y))
        else:
            self.scores_.append(float(((out - step.y) ** 2).mean()))


def double_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()


@pytest.mark.parametrize("estimator", [ContinualClassifier, ContinualRegressor])
def test_prequential_scores_are_the_steps_own_forward_before_its_update(
    digits_stream, estimator
):
    X, y, t = digits_stream
    X = X.astype(np.float64)
    if estimator is ContinualRegressor:
        y = np.eye(10)[y]  # ten outputs, as the classifier's
    params = dict(module=double_mlp(), lr=0.05, batch_size=16, random_state=0)
    params.update(max_epochs=2, callbacks=[PrequentialScore(warn=False)])
    by_hand = estimator(penalty=BeforeUpdate(), **params).fit(X, y, task_id=t)
    engine = estimator(**params).fit(X, y, task_id=t)  # the stacked backend
    record = dict(engine.net_.callbacks_)["PrequentialScore"]
    # 300 rows per task in 19 batches (the last of 12 rows), two epochs.
    assert record.training_task_ == [k for k in range(3) for _ in range(38)]
    assert dict(by_hand.net_.callbacks_)["PrequentialScore"].scores_ == (
        by_hand.penalty_.scores_
    )
    if estimator is ContinualClassifier:
        # float64 logits from the same parameters: no argmax near a tie flips.
        assert record.scores_ == by_hand.penalty_.scores_
    else:
        # Outputs within a float64 forward pass (and training) of each other.
        atol = tolerance(training_operations(engine.module_, 2 * len(X)), 1.0)
        np.testing.assert_allclose(
            record.scores_, by_hand.penalty_.scores_, rtol=0, atol=atol
        )


def test_prequential_scores_stack_and_equal_each_candidate_alone(digits_stream):
    X, y, t = digits_stream
    X = X.astype(np.float64)
    base = ContinualClassifier(
        module=double_mlp(),
        optimizer=torch.optim.Adam,
        batch_size=16,
        max_epochs=2,
        callbacks=[PrequentialScore(warn=False)],
    )
    grid = [dict(lr=lr, random_state=s) for lr, s in ((1e-3, 0), (1e-2, 1), (3e-3, 0))]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    for stacked, p in zip(together, grid, strict=True):
        alone = clone(base).set_params(**p).fit(X, y, task_id=t)
        mine, theirs = (
            dict(c.net_.callbacks_)["PrequentialScore"] for c in (stacked, alone)
        )
        assert len(mine.scores_) == 3 * 38
        assert mine.scores_ == theirs.scores_
        assert mine.training_task_ == theirs.training_task_
