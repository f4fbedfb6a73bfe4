"""The DER paper's streams, presets and task-incremental score of ``skcl benchmark``."""

import json

import numpy as np
import pytest
import torch
from _tolerance import tolerance

from skcl import ContinualClassifier
from skcl._benchmark import _streams
from skcl._benchmark._der_presets import der_params
from skcl._benchmark._presets import strategy_params
from skcl._benchmark._runner import task_il_accuracy
from skcl.datasets import make_rotated_stream
from skcl.penalties import EWC, SI
from skcl.replay import AGEM, DERPP, ER, GEM, ICaRL


@pytest.fixture
def tiny_mnist(monkeypatch):
    """20 training and 10 test 28x28 images of each digit, in place of MNIST."""
    rng = np.random.RandomState(0)
    y, y_test = np.repeat(np.arange(10), 20), np.repeat(np.arange(10), 10)
    X = rng.uniform(size=(200, 784)).astype(np.float32)
    X_test = rng.uniform(size=(100, 784)).astype(np.float32)
    monkeypatch.setattr(_streams, "_load_mnist", lambda *a: (X, y, X_test, y_test))
    return X, y, X_test, y_test


def test_seq_mnist_is_five_tasks_of_two_digits(tiny_mnist):
    stream = _streams.load_stream("seq-mnist")
    assert (stream.n_tasks, stream.regime, stream.multi_head) == (
        5, "der-seq-mnist", False,
    )  # fmt: skip
    for k in range(5):
        X, y = stream.task(k)
        assert sorted(set(y)) == [2 * k, 2 * k + 1] and len(y) == 40
        assert sorted(set(stream.y_test[stream.t_test == k])) == [2 * k, 2 * k + 1]
        assert stream.task_classes[k].tolist() == [2 * k, 2 * k + 1]


def test_der_rotated_mnist_draws_one_angle_per_task_in_0_180(tiny_mnist):
    X, *_ = tiny_mnist
    angles = _streams.der_rotation_angles(20, seed=3)
    assert angles.shape == (20,) and ((0 <= angles) & (angles < 180)).all()
    assert len(set(angles)) == 20
    assert not np.array_equal(angles, _streams.der_rotation_angles(20, seed=4))
    stream = _streams.load_stream("der-rotated-mnist", n_tasks=4, seed=3)
    assert stream.regime == "der-rotated-mnist" and stream.n_tasks == 4
    for k in range(4):
        expected = make_rotated_stream(X, np.zeros(len(X)), angles=[angles[k]])[0]
        np.testing.assert_array_equal(stream.task(k)[0], expected)


def test_der_permuted_mnist_permutes_every_task(tiny_mnist):
    X, *_ = tiny_mnist
    stream = _streams.load_stream("der-permuted-mnist", n_tasks=3, seed=0)
    tasks = [stream.task(k)[0] for k in range(3)]
    for task in tasks:
        assert not np.array_equal(task, X)
        np.testing.assert_array_equal(np.sort(task, 1), np.sort(X, 1))
    assert not np.array_equal(tasks[0], tasks[1])


def test_der_presets_follow_the_papers_best_settings():
    seq = "der-seq-mnist"
    er = [
        der_params("er", seq, {"memory_size": m}, n_tasks=5) for m in (200, 500, 5120)
    ]
    assert [p["lr"] for p in er] == [0.01, 0.1, 0.1]
    assert isinstance(er[0]["replay"], ER) and er[0]["replay"].memory_batch_size == 10
    assert er[0]["module__init"] == "xavier_uniform" and er[0]["momentum"] == 0.0
    assert er[0]["module__hidden_sizes"] == (100, 100) and er[0]["batch_size"] == 10
    derpp = der_params("der++", seq, {"memory_size": 500}, n_tasks=5)["replay"]
    assert isinstance(derpp, DERPP)
    assert (derpp.alpha, derpp.beta, derpp.memory_batch_size) == (1.0, 0.5, 10)
    icarl = strategy_params("icarl", seq, {}, n_tasks=5)
    assert icarl["lr"] == 0.1 and isinstance(icarl["replay"], ICaRL)
    assert icarl["replay"].memory_size == 200  # the default memory
    gem = strategy_params("gem", "der-permuted-mnist", {"memory_size": 500}, n_tasks=20)
    assert isinstance(gem["replay"], GEM) and gem["replay"].memory_size == 25
    assert gem["batch_size"] == 128 and gem["lr"] == 0.1
    agem = der_params("agem", "der-rotated-mnist", {"memory_size": 500}, n_tasks=20)
    assert isinstance(agem["replay"], AGEM) and agem["replay"].memory == "episodic"
    assert agem["replay"].memory_size == 25 and agem["lr"] == 0.3
    assert strategy_params("er", seq, {"lr": 0.5}, n_tasks=5)["lr"] == 0.5
    with pytest.raises(ValueError, match="no setting in the DER paper"):
        strategy_params("stable-sgd", seq, {}, n_tasks=5)


def test_der_penalty_presets_are_mammoths_strengths_in_skcls_scale(tiny_mnist):
    X, y, *_ = tiny_mnist
    seq = "der-seq-mnist"
    ewc = der_params("online-ewc", seq, {}, n_tasks=5)
    si = der_params("si", "der-rotated-mnist", {}, n_tasks=20)
    assert isinstance(ewc["penalty"], EWC) and isinstance(si["penalty"], SI)
    assert ewc["penalty"].get_params()["mode"] == "online"
    assert (ewc["penalty"].decay, ewc["penalty"].fisher) == (1.0, "empirical")
    assert (si["penalty"].lam, si["penalty"].xi, si["lr"]) == (2.0, 1.0, 0.1)
    assert ewc["penalty_step"] == si["penalty_step"] == "explicit"
    pmnist = der_params("online-ewc", "der-permuted-mnist", {"lam": 3.0}, n_tasks=20)
    assert pmnist["penalty"].lam == 3.0 and pmnist["lr"] == 0.1
    lwf = der_params("lwf", seq, {}, n_tasks=5)
    assert "penalty_step" not in lwf and lwf["optimizer__weight_decay"] == 1e-3
    assert (lwf["penalty"].lam, lwf["penalty"].temperature) == (0.25, 2.0)
    # Mammoth's oEWC after one task: e_lambda * sum F (theta - theta*)^2 with
    # F the mean squared per-sample gradient of log p(y|x) at theta*.
    first, second = y < 2, (y >= 2) & (y < 4)
    clf = ContinualClassifier(classes=list(range(10)), random_state=0, **ewc)
    clf.fit(X[first], y[first])
    clf.partial_fit(X[second][:30], y[second][:30], task_id=1)
    module = clf.module_
    anchor = {n: t.clone() for n, t in clf.snapshots_[0].items()}
    current = {n: p.detach().clone() for n, p in module.named_parameters()}
    module.load_state_dict(anchor)
    fisher = {n: torch.zeros_like(p) for n, p in module.named_parameters()}
    for x, label in zip(X[first], y[first], strict=True):
        logits = module(torch.as_tensor(x[None]))
        log_p = torch.log_softmax(logits, 1)[0, clf.classes_.tolist().index(label)]
        grads = torch.autograd.grad(log_p, list(module.parameters()))
        for name, g in zip(fisher, grads, strict=True):
            fisher[name] += g.square() / first.sum()
    module.load_state_dict(current)
    want = 90.0 * sum(
        (fisher[n] * (current[n] - anchor[n]).square()).sum() for n in fisher
    )
    got = clf.penalty_.loss(clf.net_)
    # float32: a sum over the parameters of products of Fisher entries, each
    # a mean of 40 squared per-sample gradients.
    n_params = sum(t.numel() for t in current.values())
    atol = tolerance(4 * 40 * n_params, want, torch.float32)
    assert got.item() == pytest.approx(want.item(), rel=0, abs=atol)


def test_task_il_accuracy_is_the_argmax_over_each_tasks_classes(tiny_mnist):
    stream = _streams.load_stream("seq-mnist")
    clf = ContinualClassifier(
        module__hidden_sizes=(8,), max_epochs=1, classes=np.arange(10), random_state=0
    )
    for k in range(5):
        clf.partial_fit(*stream.task(k), task_id=k)
    with torch.no_grad():
        logits = clf.module_(torch.as_tensor(stream.X_test)).numpy()
    scores = []
    for k in range(5):
        rows = stream.t_test == k
        pick = 2 * k + logits[rows][:, 2 * k : 2 * k + 2].argmax(1)
        scores.append(np.mean(pick == stream.y_test[rows]))
    assert task_il_accuracy(clf, stream) == pytest.approx(np.mean(scores), abs=0)


def test_joint_is_scored_task_incrementally_beside_the_others(tiny_mnist, tmp_path):
    from skcl.cli import main

    argv = ["benchmark", "--stream", "seq-mnist", "--strategies", "naive,joint"]
    argv += ["--seeds", "1", "--no-plots", "--quiet", "--output", str(tmp_path)]
    assert main(argv) == 0
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    joint = next(r for r in runs if r["strategy"] == "joint")
    assert 0 <= joint["task_il_accuracy"] <= 1
