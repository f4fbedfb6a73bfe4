import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _checks import (
    check_failed_chunk_rolls_back_bitwise,
    check_fit_equals_partial_fit,
    check_forgets_less_than_naive,
    check_random_state_seeds_the_memory,
    check_save_load_and_pickle_bitwise,
    check_stacks_like_alone,
    make,
)
from _tolerance import tolerance, training_operations
from torch import nn

import skcl
from skcl import ContinualRegressor, Step
from skcl.replay import ERACE

# Tiny networks train fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Three tasks of new digits: 0-2, 3-5, 6-9.
GROUPS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


def test_erace_trains_like_a_hand_written_loop(digits_stream):
    """Full-batch steps and a memory that keeps (and replays) every sample
    make the run deterministic, in float64: the incoming batch's softmax
    covers its own classes and the unseen ones, the memory's all classes."""
    X, y, _ = digits_stream
    X, y, t = X[:300].astype(np.float64), y[:300], GROUPS[y[:300]]
    lr, epochs = 0.1, 2
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    clf = make(
        ERACE(memory_size=5000, memory_batch_size=5000), module=module,
        batch_size=300, max_epochs=epochs, lr=lr, momentum=0.0,
    ).fit(X, y, task_id=t)  # fmt: skip
    hand = copy.deepcopy(clf.module_)
    hand.load_state_dict(clf.initial_snapshot_)
    optimizer = torch.optim.SGD(hand.parameters(), lr=lr)
    seen = torch.zeros(10, dtype=torch.bool)
    memory_X, memory_y, samples = [], [], 0
    for k in range(3):
        Xk, yk = torch.as_tensor(X[t == k]), torch.as_tensor(y[t == k])
        for _ in range(epochs):
            present = torch.isin(torch.arange(10), yk)
            seen |= present
            keep = present | ~seen
            optimizer.zero_grad()
            logits = hand(Xk).masked_fill(~keep, float("-inf"))
            loss = F.cross_entropy(logits, yk)
            if memory_X:
                Xm, ym = torch.cat(memory_X), torch.cat(memory_y)
                loss = loss + F.cross_entropy(hand(Xm), ym)
                samples += len(Xm)
            loss.backward()
            optimizer.step()
            memory_X.append(Xk)
            memory_y.append(yk)
            samples += len(Xk)
        if k == 1:  # task 1 trains without the logits of 0-2, with those of 6-9
            assert keep.tolist() == [False] * 3 + [True] * 7
        got = torch.cat([v.ravel() for v in clf.snapshots_[k].values()])
        expected = torch.cat([p.detach().ravel() for p in hand.parameters()])
        bound = tolerance(training_operations(hand, samples), expected)
        torch.testing.assert_close(got, expected, atol=bound, rtol=0)
    assert clf.replay_.seen_classes_.all()


def test_the_mask_keeps_the_task_outputs_with_multi_head(digits_stream):
    X, y, t = digits_stream
    clf = make(ERACE(memory_size=50))
    clf.partial_fit(X[t == 0], y[t == 0] % 5, task_id=0, classes=np.arange(10))
    replay = clf.replay_
    assert replay.seen_classes_.tolist() == [True] * 5 + [False] * 5
    task = torch.tensor([False] * 4 + [True] * 4 + [False] * 2)
    step = Step(torch.zeros(3, 64), torch.tensor([4, 5, 6]), task)
    replay.before_forward(clf.net_, step)
    # 4 present (and seen), 5 and 6 newly seen, 7 unseen; 0-3 out of the task.
    assert step.output_mask.tolist() == [False] * 4 + [True] * 4 + [False] * 2
    assert replay.seen_classes_.tolist() == [True] * 7 + [False] * 3


def test_multi_head_trains_on_a_split_stream():
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "split", n_tasks=5, random_state=0
    )
    clf = make(ERACE(memory_size=100), multi_head=True).fit(X, y, task_id=t)
    assert clf.score(X_test, y_test, task_id=t_test) > 0.9


def test_stacks_in_a_search_like_alone(digits_stream):
    check_stacks_like_alone(ERACE(memory_size=50), digits_stream)


def test_fit_equals_partial_fit_sequence(digits_stream):
    check_fit_equals_partial_fit(ERACE(memory_size=50), digits_stream)


def test_random_state_seeds_the_memory(digits_stream):
    check_random_state_seeds_the_memory(ERACE(memory_size=50), digits_stream)


def test_memory_survives_save_load_and_pickle_bitwise(digits_stream, tmp_path):
    clf = check_save_load_and_pickle_bitwise(
        ERACE(memory_size=50), digits_stream, tmp_path / "clf.skcl"
    )
    clf.replay_.seen_classes_ = clf.replay_.seen_classes_[:5]
    skcl.save(clf, tmp_path / "bad.skcl")
    with pytest.raises(ValueError, match="seen_classes_"):
        skcl.load(tmp_path / "bad.skcl")


def test_failed_chunk_rolls_the_memory_back_bitwise(digits_stream):
    X, y, t = digits_stream
    y = np.where(t == 1, y % 5 + 5, y % 5)  # task 1 brings new classes
    clf, before = check_failed_chunk_rolls_back_bitwise(
        ERACE(memory_size=50), (X, y, t)
    )
    assert torch.equal(clf.replay_.seen_classes_, before.replay_.seen_classes_)
    assert clf.replay_.seen_classes_.tolist() == [True] * 5 + [False] * 5


def test_forgets_less_than_naive_on_split_digits():
    check_forgets_less_than_naive(ERACE(memory_size=200, memory_batch_size=10))


def test_refuses_a_regressor():
    X, y = np.zeros((10, 2), dtype=np.float32), np.zeros(10)
    reg = ContinualRegressor(replay=ERACE())
    with pytest.raises(TypeError, match="ContinualClassifier"):
        reg.fit(X, y)
