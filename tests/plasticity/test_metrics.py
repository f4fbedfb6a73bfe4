"""Online accuracy, the diagnostics, their callback and their display."""

import warnings

import numpy as np
import pytest
import torch
from _tolerance import tolerance
from torch import nn

from skcl import ContinualClassifier
from skcl.callbacks import PlasticityMonitor, PrequentialScore
from skcl.metrics import (
    OnlineAccuracyDisplay,
    online_accuracy,
    online_scorer,
    plasticity_diagnostics,
    prequential_scores,
    srank,
    total_online_accuracy,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fitted(digits_stream):
    X, y, t = digits_stream
    clf = ContinualClassifier(
        module__hidden_sizes=(16,),
        batch_size=25,
        max_epochs=2,
        random_state=0,
        callbacks=[PrequentialScore(), PlasticityMonitor(n_samples=50)],
    )
    return clf.fit(X, y, task_id=t), X, y, t


def test_online_accuracy_is_the_mean_of_each_tasks_records(fitted):
    clf = fitted[0]
    record = dict(clf.net_.callbacks_)["PrequentialScore"]
    scores, tasks = prequential_scores(clf)
    assert scores.tolist() == record.scores_ and tasks.tolist() == record.training_task_
    # 300 rows per task in batches of 25, two epochs: 24 records per task.
    by_hand = [sum(record.scores_[24 * k : 24 * (k + 1)]) / 24 for k in range(3)]
    total = sum(record.scores_) / len(record.scores_)
    bound = tolerance(len(scores), 1.0)
    np.testing.assert_allclose(online_accuracy(scores, tasks), by_hand, atol=bound)
    assert total_online_accuracy(scores) == pytest.approx(total, abs=bound)
    assert online_scorer()(clf, None, None) == total_online_accuracy(scores)


def test_online_accuracy_keeps_the_order_of_first_appearance():
    result = online_accuracy([1.0, 0.0, 0.5, 0.25], ["b", "a", "a", "b"])
    np.testing.assert_array_equal(result, [0.625, 0.25])


def test_online_metrics_refuse_what_they_cannot_score(fitted):
    with pytest.raises(ValueError, match="one task per score"):
        online_accuracy([0.5, 0.5], [0])
    with pytest.raises(ValueError, match="finite"):
        total_online_accuracy([0.5, np.nan])
    clf = ContinualClassifier(max_epochs=1).fit(fitted[1][:20], fitted[2][:20])
    with pytest.raises(ValueError, match="PrequentialScore"):
        prequential_scores(clf)


def test_srank_equals_the_count_from_numpy_singular_values():
    rng = np.random.RandomState(0)
    features = rng.normal(size=(40, 6)) @ np.diag([5.0, 3.0, 1.0, 0.1, 0.01, 0.0])
    sigma = np.linalg.svd(features, compute_uv=False)
    for delta in (0.0, 0.01, 0.1, 0.5):
        share = np.cumsum(sigma) / sigma.sum()
        expected = int(np.argmax(share >= 1 - delta - 1e-12)) + 1
        assert srank(features, delta) == expected
    assert srank(np.zeros((3, 2))) == 0


def test_diagnostics_of_a_hand_built_network():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 3)), np.arange(30) % 2
    clf = ContinualClassifier(module=module, max_epochs=1, random_state=0).fit(X, y)
    with torch.no_grad():  # two dead units
        W, b = list(clf.module_.parameters())[:2]
        W[0], b[0], W[2], b[2] = 0.0, -1.0, 0.0, -0.5
    found = plasticity_diagnostics(clf, X, y)
    params = [p.detach() for p in clf.module_.parameters()]
    h = torch.relu(torch.as_tensor(X) @ params[0].T + params[1])
    assert found["dead_fraction"] == 0.5
    assert found["srank"] == srank(h.numpy())
    flat = torch.cat([p.flatten() for p in params])
    assert found["weight_magnitude"] == pytest.approx(float(flat.abs().mean()))
    copies = [p.clone().requires_grad_() for p in params]
    hidden = torch.relu(torch.as_tensor(X) @ copies[0].T + copies[1])
    loss = nn.functional.cross_entropy(
        hidden @ copies[2].T + copies[3], torch.as_tensor(y)
    )
    norm = torch.cat([g.flatten() for g in torch.autograd.grad(loss, copies)]).norm()
    assert found["gradient_norm"] == pytest.approx(
        float(norm), abs=tolerance(100, norm)
    )
    assert "gradient_norm" not in plasticity_diagnostics(clf, X)


def test_the_monitor_records_each_task_as_the_function_measures(fitted):
    clf, X, y, t = fitted
    monitor = dict(clf.net_.callbacks_)["PlasticityMonitor"]
    assert monitor.training_task_ == [0, 1, 2]
    last = plasticity_diagnostics(clf, X[t == 2][:50], y[t == 2][:50])
    for name, value in last.items():
        assert getattr(monitor, f"{name}_")[-1] == pytest.approx(value, rel=1e-6)


def test_the_display_draws_smoothed_curves_and_a_diagnostic(fitted, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    clf = fitted[0]
    display = OnlineAccuracyDisplay.from_estimator(
        {"plain": clf}, diagnostic="srank", chance=0.1
    )
    assert display.ax_.shape == (2,)
    np.testing.assert_allclose(
        display.lines_["plain"].get_ydata(), online_accuracy(*prequential_scores(clf))
    )
    long = OnlineAccuracyDisplay({"a": np.linspace(1, 0, 500)}).plot()
    assert len(long.lines_["a"].get_xdata()) == 500 - 10 + 1  # a window of 10
    with pytest.raises(ValueError, match="diagnostic must be one of"):
        OnlineAccuracyDisplay.from_estimator(clf, diagnostic="rank")
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("warn", [True, False])
def test_a_network_that_stopped_learning_is_reported_once(digits_stream, warn):
    X, y, t = digits_stream
    clf = ContinualClassifier(
        module__hidden_sizes=(16,),
        lr=0.1,
        batch_size=25,
        max_epochs=5,
        random_state=0,
        callbacks=[PrequentialScore(warn=warn)],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a network that learns: no warning
        clf.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=np.arange(10))
    with torch.no_grad():  # every hidden unit dead: one class predicted
        list(clf.module_.parameters())[1].fill_(-100.0)
    clf.set_params(lr=1e-12)
    record = warnings.catch_warnings(record=True)
    with record as caught:
        warnings.simplefilter("always")
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
        clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    stalled = [w for w in caught if "stopped learning" in str(w.message)]
    assert len(stalled) == (1 if warn else 0)
    record = dict(clf.net_.callbacks_)["PrequentialScore"]
    assert record.warned_ == warn
