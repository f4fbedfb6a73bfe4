import numpy as np
import torch
from scipy.optimize import minimize

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
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


def test_prediction_applies_each_tasks_bias_layer():
    X, X_test, y, _, t, _ = load_digits_stream("split", n_tasks=5, random_state=0)
    clf = ContinualClassifier(
        replay=BiC(memory_size=200), module__hidden_sizes=(16,), max_epochs=2,
        batch_size=10, random_state=0,
    )  # fmt: skip
    clf.fit(X[t < 3], y[t < 3], task_id=t[t < 3])
    replay = clf.replay_
    assert [m.nonzero()[:, 0].tolist() for m in replay.bias_classes_] == [
        [0, 1], [2, 3], [4, 5],
    ]  # fmt: skip
    assert replay.bias_[0].tolist() == [1.0, 0.0]  # no old classes: no layer
    with torch.no_grad():
        z = clf.module_.eval()(torch.as_tensor(X_test)).double()
    for k in (1, 2):
        alpha, beta = replay.bias_[k].double()
        z[:, 2 * k : 2 * k + 2] = alpha * z[:, 2 * k : 2 * k + 2] + beta
    np.testing.assert_allclose(
        clf.predict_proba(X_test), torch.softmax(z, 1).numpy(), rtol=1e-5, atol=1e-6
    )
    with clf.use_snapshot(0):
        with torch.no_grad():
            z0 = clf.module_(torch.as_tensor(X_test)).double()
        np.testing.assert_array_equal(clf.predict(X_test), z0.argmax(1).numpy())
