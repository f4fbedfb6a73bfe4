import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from skcl import ContinualClassifier, Step
from skcl.datasets import load_digits_stream
from skcl.penalties._lwf import distillation
from skcl.replay import BiC
from skcl.replay._bic import fit_bias_layer


def _cross_entropy(params, z, y, new):
    """The bias-corrected cross-entropy, written out in numpy."""
    z = np.where(new, params[0] * z + params[1], z)
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def test_bias_layer_recovers_a_known_logit_shift():
    """Labels drawn from softmax(z); the new classes' logits seen as (z - b) / a:
    the fit reaches the cross-entropy's minimum (scipy's, on a loss written
    out) and so undoes the shift, up to the sampling error of the labels."""
    rng = torch.Generator().manual_seed(0)
    n, alpha, beta = 4000, 2.0, -1.5
    z = 2 * torch.randn(n, 4, generator=rng, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=rng)[:, 0]
    new = torch.tensor([False, False, True, True])
    seen = torch.where(new, (z - beta) / alpha, z)
    fitted = fit_bias_layer(seen, y, new, epochs=300, lr=2.0).numpy()
    best = minimize(
        _cross_entropy, [1.0, 0.0], args=(seen.numpy(), y.numpy(), new.numpy()),
        method="Nelder-Mead", options=dict(xatol=1e-8, fatol=1e-12),
    ).x  # fmt: skip
    np.testing.assert_allclose(fitted, best, rtol=0, atol=1e-3)
    # The maximum likelihood's standard error is about 0.03 with 4,000 labels.
    np.testing.assert_allclose(fitted, [alpha, beta], rtol=0, atol=0.15)


def test_held_out_rows_never_train_and_never_enter_the_memory():
    X, _, y, _, t, _ = load_digits_stream("split", n_tasks=5, random_state=0)
    clf = ContinualClassifier(
        replay=BiC(memory_size=500, holdout_fraction=0.2), module__hidden_sizes=(16,),
        max_epochs=2, batch_size=10, random_state=0,
    )  # fmt: skip
    clf.fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    replay = clf.replay_
    X0 = torch.as_tensor(X[t < 2])
    held = replay._held_out(clf.net_, X0)
    # A function of the row alone: the same rows in any order or batch.
    order = torch.randperm(len(X0))
    assert torch.equal(replay._held_out(clf.net_, X0[order]), held[order])
    assert 0.1 < held.double().mean() < 0.3
    memory = replay.memory_.X[replay.memory_.filled()]
    assert not replay._held_out(clf.net_, memory).any()
    assert replay._held_out(clf.net_, replay.holdout_X_).all()
    # Balanced: the held-out samples of each class seen, at most 0.2 * 500 / 4.
    available = torch.as_tensor(y[t < 2])[held].bincount().clamp(max=25)
    assert torch.equal(replay.holdout_y_.bincount(), available)


@pytest.fixture(scope="module")
def three_split_tasks():
    """BiC after the first 3 tasks of split digits (classes 0-5), and X_test."""
    X, X_test, y, _, t, _ = load_digits_stream("split", n_tasks=5, random_state=0)
    clf = ContinualClassifier(
        replay=BiC(memory_size=200), module__hidden_sizes=(16,), max_epochs=2,
        batch_size=10, random_state=0,
    )  # fmt: skip
    clf.fit(X[t < 3], y[t < 3], task_id=t[t < 3])
    return clf, X_test


def _corrected(z, alpha_beta, classes):
    alpha, beta = alpha_beta.double()
    z = z.clone()
    z[:, classes] = alpha * z[:, classes] + beta
    return z


def test_prediction_applies_the_bias_layer_of_its_task_only(three_split_tasks):
    """Each layer corrects the network of its own task: after task 2, only
    task 2's layer (on classes 4, 5); task 1's (fitted to task 1's network,
    which the distillation already carried over) is not applied again."""
    clf, X_test = three_split_tasks
    replay = clf.replay_
    assert [m.nonzero()[:, 0].tolist() for m in replay.bias_classes_] == [
        [0, 1], [2, 3], [4, 5],
    ]  # fmt: skip
    assert replay.bias_[0].tolist() == [1.0, 0.0]  # no old classes: no layer
    assert all(not np.allclose(b.tolist(), [1.0, 0.0]) for b in replay.bias_[1:])
    for task in (1, 2):
        with clf.use_snapshot(task):
            with torch.no_grad():
                z = clf.module_.eval()(torch.as_tensor(X_test)).double()
            expected = _corrected(z, replay.bias_[task], [2 * task, 2 * task + 1])
            np.testing.assert_allclose(
                clf.predict_proba(X_test), torch.softmax(expected, 1).numpy(),
                rtol=1e-5, atol=1e-6,
            )  # fmt: skip
    with clf.use_snapshot(0):
        with torch.no_grad():
            z0 = clf.module_(torch.as_tensor(X_test)).double()
        np.testing.assert_array_equal(clf.predict(X_test), z0.argmax(1).numpy())


def test_bias_layer_is_fitted_on_the_networks_raw_outputs(three_split_tasks):
    """Task 2's layer minimises the cross-entropy of the raw outputs of the
    held-out samples (classes 0-5, the layer on 4, 5), as prediction uses it."""
    clf, _ = three_split_tasks
    replay = clf.replay_
    with torch.no_grad():
        z = clf.module_.eval()(replay.holdout_X_)[:, :6]
    new = torch.tensor([False] * 4 + [True] * 2)
    expected = fit_bias_layer(
        z, replay.holdout_y_, new, epochs=replay.bias_epochs, lr=replay.bias_lr
    )
    torch.testing.assert_close(replay.bias_[2], expected, rtol=0, atol=1e-5)


def test_domain_incremental_tasks_weigh_cross_entropy_and_distillation_equally():
    """Every task has all 10 classes: from the second task on lam is
    n_old / (n_old + n_task) = 10 / 20, not 10 / (10 + 0 new classes) = 1,
    which trained on the distillation alone (chance on each new task)."""
    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "permuted", n_tasks=2, random_state=0
    )
    clf = ContinualClassifier(
        replay=BiC(memory_size=100), module__hidden_sizes=(32,), max_epochs=2,
        batch_size=10, random_state=0,
    )  # fmt: skip
    clf.fit(X, y, task_id=t)
    replay, net = clf.replay_, clf.net_
    assert replay.old_classes_.all() and not replay._task_classes.any()
    assert [b.tolist() for b in replay.bias_] == [[1.0, 0.0], [1.0, 0.0]]
    Xb, yb = torch.as_tensor(X[t == 1][:32]), torch.as_tensor(y[t == 1][:32])
    step = Step(Xb, yb, None)
    step.logits = clf.module_(Xb)
    step.loss = torch.nn.functional.cross_entropy(step.logits, yb)
    with torch.no_grad():
        teacher = replay.teacher_(Xb)
    kd = distillation(step.logits, teacher, replay.temperature)
    torch.testing.assert_close(
        replay.loss(net, step), 0.5 * (kd - step.loss), rtol=1e-6, atol=1e-7
    )
    # It learns the second task (chance is 0.1).
    assert (clf.predict(X_test[t_test == 1]) == y_test[t_test == 1]).mean() > 0.5
