import copy
import itertools

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
from skcl.replay import GEM
from skcl.replay._gem import solve_dual

# Tiny networks train fastest on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS64 = torch.finfo(torch.float64).eps


def brute_force_dual(gram, dots, margin, eps):
    """The dual's minimum by enumeration: for every set of free variables
    (the others at ``margin``), the stationary point; the best feasible one."""
    P = gram + eps * np.eye(len(gram))
    best, best_value = None, np.inf
    for free in itertools.product([False, True], repeat=len(P)):
        free = np.array(free)
        v = np.full(len(P), float(margin))
        if free.any():
            rhs = -(dots[free] + P[np.ix_(free, ~free)] @ v[~free])
            v[free] = np.linalg.solve(P[np.ix_(free, free)], rhs)
        value = 0.5 * v @ P @ v + dots @ v
        if (v >= margin - 1e-12 * abs(margin)).all() and value < best_value:
            best, best_value = v, value
    return best


@pytest.mark.parametrize("seed", range(8))
def test_the_dual_solution_equals_the_closed_form_on_two_tasks(seed):
    rng = np.random.RandomState(seed)
    G, g = rng.normal(size=(2, 5)), rng.normal(size=5)
    g -= (1 + seed % 3) * G[seed % 2]  # a conflict with one task or both
    gram, dots = G @ G.T, G @ g
    v = solve_dual(gram, dots, 0.5, 1e-3)
    expected = brute_force_dual(gram, dots, 0.5, 1e-3)
    # Two 2 x 2 solves (Cholesky, then Lawson-Hanson's), each within
    # cond(P) roundings of the magnitude of the solution.
    P = gram + 1e-3 * np.eye(2)
    bound = tolerance(8 * np.linalg.cond(P), np.abs(expected))
    np.testing.assert_allclose(v, expected, atol=bound, rtol=0)
    assert (v >= 0.5).all()


def test_the_dual_solution_with_a_zero_margin_projects_onto_the_cone():
    G = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    g = np.array([-2.0, 3.0, 1.0])
    v = solve_dual(G @ G.T, G @ g, 0.0, 1e-3)
    # Only the first constraint binds: v = (2 / (1 + eps), 0).
    np.testing.assert_allclose(v, [2 / 1.001, 0.0], atol=tolerance(8, 2.0), rtol=0)


def fitted_on_two_tasks(digits_stream, **params):
    X, y, t = digits_stream
    clf = make(GEM(memory_size=20, **params)).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    clf.net_.end_task()  # the memory of task 1 joins task 0's
    clf.net_.task_index_ += 1
    return clf


def test_the_projected_gradient_satisfies_every_constraint(digits_stream):
    X, y, t = digits_stream
    clf = fitted_on_two_tasks(digits_stream)
    gem, module, memory = clf.replay_, clf.module_, clf.replay_.memory_
    assert memory.tasks.tolist() == [0] * 20 + [1] * 20
    params = list(module.parameters())
    flat = lambda grads: torch.cat([a.reshape(-1) for a in grads])  # noqa: E731
    G = torch.stack(
        [
            flat(
                torch.autograd.grad(
                    F.cross_entropy(module(memory.X[k]), memory.y[k]), params
                )
            )
            for k in (torch.arange(20), torch.arange(20, 40))
        ]
    )
    torch.testing.assert_close(gem.task_gradients(clf.net_, params), G)
    Xb, yb = torch.as_tensor(X[t == 2][:20]), torch.as_tensor(y[t == 2][:20])
    batch = flat(torch.autograd.grad(F.cross_entropy(module(Xb), yb), params))
    before, conflicts = gem.n_projected_, 0
    for g in (batch, batch - 2 * G[0], -G[0] - G[1]):
        for p, a in zip(params, g.split([p.numel() for p in params]), strict=True):
            p.grad = a.view_as(p).clone()
        gem.after_backward(clf.net_, Step(Xb, yb, None))
        projected = flat([p.grad for p in params])
        G64, g64 = G.double(), g.double()
        if not (G @ g < 0).any():
            assert torch.equal(projected, g)
            continue
        conflicts += 1
        v = brute_force_dual(
            (G64 @ G64.T).numpy(), (G64 @ g64).numpy(), gem.margin, gem.eps
        )
        expected = g64 + G64.T @ torch.from_numpy(v)
        # float32 storage of a float64 result: one rounding of its magnitude.
        atol = tolerance(1, expected, torch.float32)
        torch.testing.assert_close(projected.double(), expected, atol=atol, rtol=0)
        # G g' + eps v = the dual's gradient >= 0: each constraint holds up to
        # eps * v_k, and a float32 dot of the gradients' length.
        terms = G.abs().double() @ projected.abs().double()
        slack = tolerance(len(g), terms, torch.float32) + atol * G.abs().sum(1)
        assert (
            G64 @ projected.double() >= -gem.eps * torch.from_numpy(v) - slack
        ).all()
    assert gem.n_projected_ - before == conflicts >= 2


def test_gem_trains_like_a_hand_written_loop(digits_stream):
    """Full-batch steps, and a memory that keeps each task's whole chunk,
    make the run deterministic, in float64 (three tasks of new digits)."""
    X, y, _ = digits_stream
    X, y = X[:300].astype(np.float64), y[:300]
    t = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])[y]
    lr, epochs, margin = 0.1, 3, 0.5
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    clf = make(
        GEM(memory_size=300, margin=margin), module=module,
        batch_size=300, max_epochs=epochs, lr=lr, momentum=0.0,
    ).fit(X, y, task_id=t)  # fmt: skip
    hand = copy.deepcopy(clf.module_)
    hand.load_state_dict(clf.initial_snapshot_)
    params = list(hand.parameters())
    flat = lambda grads: torch.cat([a.reshape(-1) for a in grads])  # noqa: E731
    projected, samples = 0, 0
    for k in range(3):
        Xk, yk = torch.as_tensor(X[t == k]), torch.as_tensor(y[t == k])
        for _ in range(epochs):
            loss = F.cross_entropy(hand(Xk), yk)
            g = flat(torch.autograd.grad(loss, params))
            samples += int((t <= k).sum())
            if k:
                G = torch.stack(
                    [
                        flat(
                            torch.autograd.grad(
                                F.cross_entropy(
                                    hand(torch.as_tensor(X[t == j])),
                                    torch.as_tensor(y[t == j]),
                                ),
                                params,
                            )
                        )
                        for j in range(k)
                    ]
                )
                if (G @ g < 0).any():
                    v = brute_force_dual(
                        (G @ G.T).numpy(), (G @ g).numpy(), margin, 1e-3
                    )
                    g = g + G.T @ torch.from_numpy(v)
                    projected += 1
            with torch.no_grad():
                for p, a in zip(params, g.split([p.numel() for p in params])):
                    p -= lr * a.view_as(p)
        got = torch.cat([v.ravel() for v in clf.snapshots_[k].values()])
        expected = flat([p.detach() for p in params])
        bound = tolerance(training_operations(hand, samples), expected)
        torch.testing.assert_close(got, expected, atol=bound, rtol=0)
    assert clf.replay_.n_projected_ == projected > 0


def test_stacks_in_a_search_like_alone(digits_stream):
    check_stacks_like_alone(GEM(memory_size=20), digits_stream)


def test_fit_equals_partial_fit_sequence(digits_stream):
    check_fit_equals_partial_fit(GEM(memory_size=20), digits_stream)


def test_random_state_seeds_the_memory(digits_stream):
    check_random_state_seeds_the_memory(GEM(memory_size=20), digits_stream)


def test_memory_survives_save_load_and_pickle_bitwise(digits_stream, tmp_path):
    clf = check_save_load_and_pickle_bitwise(
        GEM(memory_size=20), digits_stream, tmp_path / "clf.skcl"
    )
    assert len(clf.replay_.memory_) == 60
    clf.replay_.memory_.per_class = 7
    skcl.save(clf, tmp_path / "bad.skcl")
    with pytest.raises(ValueError, match=r"memory_\.per_task is 7, but memory_size=20"):
        skcl.load(tmp_path / "bad.skcl")


def test_failed_chunk_rolls_the_memory_back_bitwise(digits_stream):
    clf, before = check_failed_chunk_rolls_back_bitwise(
        GEM(memory_size=20), digits_stream
    )
    assert clf.replay_.n_projected_ == before.replay_.n_projected_


def test_forgets_less_than_naive_on_split_digits():
    check_forgets_less_than_naive(GEM(memory_size=40))


def test_trains_a_regressor():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(180, 3)).astype(np.float32)
    y = X @ [1.0, -2.0, 0.5] + np.repeat([0.0, 3.0, -3.0], 60)
    reg = ContinualRegressor(replay=GEM(memory_size=10), max_epochs=2, random_state=0)
    reg.fit(X, y, task_id=np.repeat([0, 1, 2], 60))
    assert len(reg.replay_.memory_) == 30 and reg.replay_.n_projected_ > 0


def test_parameters_are_validated_before_any_state_changes(digits_stream):
    X, y, _ = digits_stream
    for bad, name in [
        (GEM(margin=-0.1), "margin"),
        (GEM(eps=0.0), "eps"),
        (GEM(memory_size=0), "memory_size"),
    ]:
        clf = make(bad)
        with pytest.raises(ValueError, match=name):
            clf.fit(X, y)
        assert not hasattr(clf, "net_")
