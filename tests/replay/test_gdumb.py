import numpy as np
import pytest
import torch
from _checks import (
    assert_same_memory,
    assert_same_network,
    check_failed_chunk_rolls_back_bitwise,
    check_fit_equals_partial_fit,
    check_forgets_less_than_naive,
    check_random_state_seeds_the_memory,
    check_save_load_and_pickle_bitwise,
    check_stacks_like_alone,
    make,
)
from sklearn.base import clone

import skcl
from skcl import ContinualClassifier, ContinualRegressor
from skcl.replay import GDumb, GreedyMemory

# Tiny networks train fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(memory_size=60, epochs=3, batch_size=20)


def greedy_by_hand(labels, capacity, n_classes, batch):
    """GDumb's sampler written sample by sample, with the same draws."""
    kept = []  # (label, index in the stream) per slot
    for start in range(0, len(labels), batch):
        draws = torch.rand(len(labels[start : start + batch]), dtype=torch.float64)
        for i, label in enumerate(labels[start : start + batch]):
            counts = np.bincount([k for k, _ in kept], minlength=n_classes)
            if len(kept) < capacity:
                kept.append((label, start + i))
            elif counts[label] < counts.max():
                largest = int(np.argmax(counts))
                rows = [s for s, (k, _) in enumerate(kept) if k == largest]
                kept[rows[int(draws[i] * len(rows))]] = (label, start + i)
    return kept


def test_the_sampler_keeps_classes_balanced_and_evicts_from_the_largest():
    memory = GreedyMemory(capacity=4, n_classes=3)
    offer = lambda labels: memory.add(  # noqa: E731
        torch.arange(len(labels), dtype=torch.float32)[:, None] + 10 * len(memory),
        torch.tensor(labels),
        task=0,
    )
    offer([0, 0, 0, 0])
    counts = lambda: torch.bincount(memory.y[:4], minlength=3).tolist()  # noqa: E731
    assert counts() == [4, 0, 0]
    offer([1])  # evicts a 0
    assert counts() == [3, 1, 0]
    offer([1, 1])  # the second 1 finds its class as large as the largest
    assert counts() == [2, 2, 0]
    offer([2])  # of the largest classes (0 and 1), the lowest: a 0 leaves
    assert counts() == [1, 2, 1] and memory.n_filled == 4


def test_the_sampler_equals_a_hand_written_one():
    rng = np.random.RandomState(0)
    labels = rng.choice(5, size=300, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    torch.manual_seed(1)
    memory = GreedyMemory(capacity=40, n_classes=5)
    for start in range(0, 300, 7):
        part = labels[start : start + 7]
        X = torch.arange(start, start + len(part), dtype=torch.float32)[:, None]
        memory.add(X, torch.as_tensor(part), task=0)
    torch.manual_seed(1)
    kept = greedy_by_hand(labels, 40, 5, 7)
    assert memory.X[:, 0].long().tolist() == [i for _, i in kept]
    assert memory.y.tolist() == [k for k, _ in kept]
    counts = np.bincount(labels, minlength=5)
    held = torch.bincount(memory.y, minlength=5).numpy()
    # Classes with more samples than their share hold the share or one more.
    assert held.max() - held[counts > 8].min() <= 1 and (held <= counts).all()


def test_the_schedule_is_sgdr_after_a_warm_up_pass():
    gdumb = GDumb(epochs=20, lr=0.05, min_lr=5e-4)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=1, T_mult=2, eta_min=5e-4
    )
    expected = []
    for epoch in range(20):  # the authors' loop
        if epoch == 0:
            optimizer.param_groups[0]["lr"] = 0.005
        elif epoch == 1:
            optimizer.param_groups[0]["lr"] = 0.05
        else:
            scheduler.step()
        expected.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(gdumb.schedule(), expected, rtol=4 * np.finfo(float).eps)


def test_retraining_from_scratch_is_deterministic_per_random_state(digits_stream):
    """The network after a task depends on the memory and random_state, not
    on what the estimator's own training on the stream did."""
    X, y, t = digits_stream
    a = make(GDumb(**FAST), lr=0.01).fit(X, y, task_id=t)
    b = make(GDumb(**FAST), lr=0.3, momentum=0.0).fit(X, y, task_id=t)
    assert_same_memory(a, b)
    assert_same_network(a, b)
    c = make(GDumb(**FAST), random_state=1).fit(X, y, task_id=t)
    first = [next(e.module_.parameters()) for e in (a, c)]
    assert not torch.equal(*first)
    # The retraining's passes follow the chunk's in the history.
    tasks = [h["task"] for h in a.net_.history]
    assert tasks == [0] * 5 + [1] * 5 + [2] * 5
    assert [h["lr"] for h in a.net_.history][2:5] == pytest.approx(
        GDumb(**FAST).schedule()
    )


def test_predictions_come_from_the_retrained_network(digits_stream):
    X, y, t = digits_stream
    clf = make(GDumb(memory_size=60, epochs=32, batch_size=10), lr=1e-6)
    clf.fit(X, y, task_id=t)
    memory = clf.replay_.memory_
    # 60 rows, 6 per class: the retrained network fits them, the stream's
    # training (at lr 1e-6) could not have.
    assert torch.bincount(memory.y, minlength=10).tolist() == [6] * 10
    assert clf.score(memory.X.numpy(), memory.y.numpy()) > 0.9


def test_stacks_in_a_search_like_alone(digits_stream):
    check_stacks_like_alone(GDumb(**FAST), digits_stream)


def test_fit_equals_partial_fit_sequence(digits_stream):
    check_fit_equals_partial_fit(GDumb(**FAST), digits_stream)


def test_random_state_seeds_the_memory(digits_stream):
    check_random_state_seeds_the_memory(GDumb(**FAST), digits_stream)


def test_memory_survives_save_load_and_pickle_bitwise(digits_stream, tmp_path):
    clf = check_save_load_and_pickle_bitwise(
        GDumb(**FAST), digits_stream, tmp_path / "m"
    )
    clf.replay_.memory_.n_filled = 61
    skcl.save(clf, tmp_path / "bad")
    with pytest.raises(ValueError, match=r"n_filled should be in \[0, 60\], got 61"):
        skcl.load(tmp_path / "bad")


def test_failed_retraining_rolls_everything_back_bitwise(digits_stream):
    """It fails in the first pass of the retraining after task 1's chunk:
    the memory was written and the network re-initialized."""
    check_failed_chunk_rolls_back_bitwise(GDumb(**FAST), digits_stream, at=3)


def test_forgets_less_than_naive_on_split_digits():
    check_forgets_less_than_naive(GDumb(memory_size=200, epochs=16), max_epochs=1)


def test_multi_head_predicts_within_each_task():
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "split", n_tasks=5, random_state=0
    )
    clf = make(GDumb(memory_size=100, epochs=8), multi_head=True, max_epochs=1)
    clf.fit(X, y, task_id=t)
    assert clf.score(X_test, y_test, task_id=t_test) > 0.9


def test_refuses_a_regressor():
    X, y = np.zeros((10, 2), dtype=np.float32), np.zeros(10)
    with pytest.raises(TypeError, match="ContinualClassifier"):
        ContinualRegressor(replay=GDumb()).fit(X, y)


def test_parameters_are_validated_before_any_state_changes(digits_stream):
    X, y, _ = digits_stream
    for bad, name in [
        (GDumb(epochs=0), "epochs"),
        (GDumb(lr=0.0), "lr"),
        (GDumb(momentum=1.0), "momentum"),
        (GDumb(batch_size=0), "batch_size"),
        (GDumb(augment="crop"), "augment"),
    ]:
        clf = make(bad)
        with pytest.raises(ValueError, match=name):
            clf.fit(X, y)
        assert not hasattr(clf, "net_")


def test_the_retraining_runs_the_augmentation(digits_stream):
    """Images of 1 x 8 x 8 cropped with padding 1 during the retraining only."""
    from torch import nn

    from skcl.datasets import RandomCropFlip

    X, y, t = digits_stream
    X = X.reshape(-1, 1, 8, 8)
    module = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)
    )
    params = dict(module=module, batch_size=20, max_epochs=1, random_state=0)
    replay = GDumb(**FAST, augment=RandomCropFlip(padding=1, flip=False))
    a, b = (ContinualClassifier(replay=clone(replay), **params) for _ in range(2))
    for clf in (a, b):
        clf.fit(X, y, task_id=t)
    plain = ContinualClassifier(replay=GDumb(**FAST), **params).fit(X, y, task_id=t)
    assert_same_network(a, b)
    assert_same_memory(a, plain)  # the memory sees the stream as it came
    first = [next(e.module_.parameters()) for e in (a, plain)]
    assert not torch.equal(*first)
    assert a.replay_.augment.padding == 1 and a.penalty_ is None
