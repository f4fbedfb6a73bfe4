import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
from _tolerance import tolerance, training_operations
from torch import nn

from skcl import ContinualRegressor
from skcl.replay import DER, DERPP

# Tiny networks train fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_der_is_derpp_without_the_label_term(digits_stream):
    X, y, t = digits_stream
    der = make(DER(alpha=0.3, memory_size=50)).fit(X, y, task_id=t)
    derpp = make(DERPP(alpha=0.3, beta=0.0, memory_size=50)).fit(X, y, task_id=t)
    assert_same_network(der, derpp)
    assert_same_memory(der, derpp)
    assert "beta" not in DER().get_params()


def test_der_trains_like_a_hand_written_loop(digits_stream):
    """Full-batch steps and a memory that keeps (and replays) every sample
    with the logits of its step make the run deterministic, in float64."""
    X, y, t = digits_stream
    X = X.astype(np.float64)
    lr, alpha, epochs = 0.1, 0.4, 2
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    clf = make(
        DER(alpha=alpha, memory_size=5000, memory_batch_size=5000), module=module,
        batch_size=300, max_epochs=epochs, lr=lr, momentum=0.0,
    ).fit(X, y, task_id=t)  # fmt: skip
    hand = copy.deepcopy(clf.module_)
    hand.load_state_dict(clf.initial_snapshot_)
    optimizer = torch.optim.SGD(hand.parameters(), lr=lr)
    memory_X, memory_z, samples = [], [], 0
    for k in range(3):
        Xk, yk = torch.as_tensor(X[t == k]), torch.as_tensor(y[t == k])
        for _ in range(epochs):
            optimizer.zero_grad()
            logits = hand(Xk)
            loss = F.cross_entropy(logits, yk)
            if memory_X:
                Xm, zm = torch.cat(memory_X), torch.cat(memory_z)
                loss = loss + alpha * F.mse_loss(hand(Xm), zm)
                samples += len(Xm)
            loss.backward()
            optimizer.step()
            memory_X.append(Xk)
            memory_z.append(logits.detach())
            samples += len(Xk)
        got = torch.cat([v.ravel() for v in clf.snapshots_[k].values()])
        expected = torch.cat([p.detach().ravel() for p in hand.parameters()])
        bound = tolerance(training_operations(hand, samples), expected)
        torch.testing.assert_close(got, expected, atol=bound, rtol=0)


def test_stacks_in_a_search_like_alone(digits_stream):
    check_stacks_like_alone(DER(memory_size=50), digits_stream)


def test_fit_equals_partial_fit_sequence(digits_stream):
    check_fit_equals_partial_fit(DER(memory_size=50), digits_stream)


def test_random_state_seeds_the_memory(digits_stream):
    check_random_state_seeds_the_memory(DER(memory_size=50), digits_stream)


def test_memory_survives_save_load_and_pickle_bitwise(digits_stream, tmp_path):
    check_save_load_and_pickle_bitwise(
        DER(memory_size=50), digits_stream, tmp_path / "clf.skcl"
    )


def test_failed_chunk_rolls_the_memory_back_bitwise(digits_stream):
    check_failed_chunk_rolls_back_bitwise(DER(memory_size=50), digits_stream)


def test_forgets_less_than_naive_on_split_digits():
    check_forgets_less_than_naive(DER(alpha=0.5, memory_size=200))


def test_trains_a_regressor():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    y = X @ [1.0, -2.0, 0.5] + np.repeat([0.0, 3.0], 60)
    reg = ContinualRegressor(replay=DER(memory_size=30), max_epochs=2, random_state=0)
    reg.fit(X, y, task_id=np.repeat([0, 1], 60))
    assert reg.replay_.memory_.logits.shape == (30, 1)


def test_parameters_are_validated_before_any_state_changes(digits_stream):
    X, y, _ = digits_stream
    for bad, name in ((DER(alpha=-1.0), "alpha"), (DER(memory_size=0), "memory_size")):
        clf = make(bad)
        with pytest.raises(ValueError, match=name):
            clf.fit(X, y)
        assert not hasattr(clf, "net_")
