"""Candidates trained as one stacked network end as each would alone."""

import numpy as np
import pytest
import torch
from _tolerance import tolerance, training_operations
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.callbacks import Callback
from torch import nn

from skcl import ContinualClassifier, ContinualRegressor, Plugin
from skcl._engine import _fit as vectorized_fit
from skcl._engine import fit_together
from skcl._engine._by_hand import by_hand
from skcl._engine._network import StackedNetwork
from skcl.modules import MLP
from skcl.penalties import EWC, L2, MAS, SI, LwF, ShrinkAndPerturb
from skcl.replay import AGEM, DER, DERPP, ER, ERACE, GEM


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small networks train fastest with one thread."""


TASK_SIZE = 120


@pytest.fixture(scope="module")
def stream():
    """Three permuted-digits tasks of 120 images, float64."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    tasks = [X[:120, rng.permutation(64)] / 16 for _ in range(3)]
    return np.vstack(tasks), np.tile(y[:120], 3), np.repeat([0, 1, 2], 120)


def _sequential(dropout=0.25, outputs=10):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 24), nn.ReLU(), nn.Dropout(dropout), nn.Linear(24, outputs)
    ).double()


class Custom(nn.Module):
    """A module that only vmap can stack: its own forward, functional dropout."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden, self.out = nn.Linear(64, 24), nn.Linear(24, 10)

    def forward(self, X):
        hidden = torch.tanh(self.hidden(X))
        return self.out(nn.functional.dropout(hidden, 0.25, self.training))


class BatchCounter(Callback):
    """A callback that acts at every batch."""

    def initialize(self):
        self.batches_ = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.batches_ += 1


class Unstackable(Plugin):
    """A plug-in whose per-step hook does not say how it runs in a stack."""

    def after_step(self, net, step):
        pass


GRID = [
    dict(lr=lr, momentum=momentum, lr_decay=decay, penalty__lam=lam)
    for lr in (0.02, 0.1)
    for momentum, decay in ((0.0, 1.0), (0.9, 0.7))
    for lam in (1.0, 300.0)
]


def _base(**params):
    defaults = dict(
        module=_sequential(),
        penalty=EWC(),
        batch_size=10,
        max_epochs=2,
        random_state=0,
    )
    return ContinualClassifier(**{**defaults, **params})


def _alone(base, grid, X, y, t):
    return [clone(base).set_params(**params).fit(X, y, task_id=t) for params in grid]


def _close(x, z, atol, operations, dtype, rtol=1e-9):
    if atol is None:
        # Derived: eps * 3 multiply-adds per parameter per sample trained * |value|.
        atol, rtol = tolerance(operations, z, dtype), 0
    np.testing.assert_allclose(x, z, rtol=rtol, atol=atol)


def _assert_same(together, alone, atol=None):
    """Equal up to `atol`; by default the rounding bound of the training itself."""
    for a, b in zip(together, alone, strict=True):
        assert not isinstance(a, BaseException), a
        samples = len(b.net_.history) * TASK_SIZE
        dtype = next(b.module_.parameters()).dtype
        bound = (atol, training_operations(b.module_, samples), dtype)
        for p, q in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
            _close(p.detach(), q.detach(), *bound)
        for s, r in zip(a.snapshots_, b.snapshots_, strict=True):
            for name in s:
                _close(s[name], r[name], *bound)
        for x, z in zip(a.net_.history, b.net_.history, strict=True):
            assert x["lr"] == z["lr"] and x["task"] == z["task"]
            _close(x["train_loss"], z["train_loss"], *bound)
            if "penalty" in z:
                _close(x["penalty"], z["penalty"], *bound, rtol=1e-8)
        assert a.tasks_ == b.tasks_


@pytest.mark.parametrize("module", [_sequential, Custom], ids=["batched", "vmap"])
def test_grid_with_dropout_momentum_decay_and_ewc_equals_alone(stream, module):
    X, y, t = stream
    base = _base(module=module().double())
    together, reason = fit_together(
        [clone(base).set_params(**params) for params in GRID], X, y, t
    )
    assert reason is None
    alone = _alone(base, GRID, X, y, t)
    _assert_same(together, alone)
    for a, b in zip(together, alone, strict=True):
        for f, g in zip(a.penalty_.precision_, b.penalty_.precision_, strict=True):
            np.testing.assert_allclose(f, g, rtol=1e-8, atol=1e-12)
        # Training goes on identically: the optimizer state came back too.
        a.partial_fit(X[:60], y[:60], task_id=np.full(60, 3))
        b.partial_fit(X[:60], y[:60], task_id=np.full(60, 3))
    _assert_same(together, alone)


@pytest.mark.parametrize(
    "penalty, step",
    [
        (L2(), "implicit"),
        (L2(), "explicit"),
        (SI(), "implicit"),
        (SI(), "explicit"),
        ([EWC(), L2(lam=0.5)], "implicit"),
        (MAS(), "explicit"),
    ],
    ids=["l2", "l2-explicit", "si", "si-explicit", "ewc+l2", "mas-explicit"],
)
def test_penalties_and_steps_equal_alone(stream, penalty, step):
    X, y, t = stream
    grid = [dict(lr=lr, momentum=m) for lr in (0.02, 0.05) for m in (0.0, 0.9)]
    if not isinstance(penalty, list):
        grid = [{**g, "penalty__lam": lam} for g in grid for lam in (0.5, 50.0)]
    if isinstance(penalty, SI):
        grid = [{**g, "penalty__xi": xi} for g in grid[::2] for xi in (1e-3, 0.1)]
    base = _base(penalty=penalty, penalty_step=step)
    together, reason = fit_together(
        [clone(base).set_params(**params) for params in grid], X, y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X, y, t))


@pytest.mark.parametrize(
    "optimizer, options",
    [
        (torch.optim.SGD, dict(nesterov=True, weight_decay=1e-3)),
        (torch.optim.Adam, dict(amsgrad=True)),
        (torch.optim.AdamW, dict(weight_decay=0.05)),
        (torch.optim.RMSprop, dict(centered=True, momentum=0.5)),
        (torch.optim.Adagrad, dict(lr_decay=0.01)),
    ],
    ids=["sgd-nesterov", "adam-amsgrad", "adamw", "rmsprop", "adagrad"],
)
@pytest.mark.parametrize("step", ["implicit", "explicit"])
def test_every_stacked_optimizer_equals_alone(stream, optimizer, options, step):
    X, y, t = stream
    base = _base(
        optimizer=optimizer,
        penalty_step=step,
        **{f"optimizer__{k}": v for k, v in options.items()},
    )
    grid = [dict(lr=0.01, penalty__lam=1.0), dict(lr=0.002, penalty__lam=30.0)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X, y, t))
    # A callback at every batch trains on the module and torch.optim itself.
    on_module = clone(base).set_params(callbacks=[("batches", BatchCounter())])
    _assert_same(together, _alone(on_module, grid, X, y, t))


@pytest.mark.parametrize("memory", ["reservoir", "class_balanced"])
@pytest.mark.parametrize("seeds", [(0, 0), (0, 1)], ids=["one-seed", "seeds"])
def test_replay_candidates_equal_alone(stream, memory, seeds):
    """Seeded alike, they share one memory; seeded apart, each keeps its own."""
    X, y, t = stream
    base = _base(replay=ER(memory_size=30, memory=memory, memory_batch_size=8))
    grid = [
        dict(lr=lr, penalty__lam=lam, random_state=seed)
        for lr, lam, seed in zip((0.01, 0.05), (1, 30), seeds, strict=True)
    ]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    alone = _alone(base, grid, X, y, t)
    assert reason is None
    _assert_same(together, alone)
    for a, b in zip(together, alone, strict=True):
        assert torch.equal(a.replay_.memory_.X, b.replay_.memory_.X)
    memories = [e.replay_.memory_.X for e in together]
    assert torch.equal(*memories) == (seeds[0] == seeds[1])


@pytest.mark.parametrize(
    "plugins",
    [
        dict(penalty=LwF(lam=1.0)),
        dict(replay=DERPP(memory_size=30, memory_batch_size=8)),
        dict(replay=DER(memory_size=30, memory_batch_size=8)),
        dict(replay=ERACE(memory_size=30, memory_batch_size=8)),
        dict(replay=GEM(memory_size=10)),
        dict(replay=AGEM(memory_size=5, memory_batch_size=8)),
        dict(penalty=[LwF(lam=0.5), SI(lam=0.1)], replay=ER(memory_size=20)),
        dict(penalty=ShrinkAndPerturb(shrink=0.01, noise=0.01)),
    ],
    ids=["lwf", "derpp", "der", "erace", "gem", "agem", "lwf-si-er", "shrink-perturb"],
)
@pytest.mark.parametrize("seeds", [(0, 0), (0, 1)], ids=["one-seed", "seeds"])
def test_per_candidate_hooks_equal_alone(stream, plugins, seeds):
    X, y, t = stream
    base = _base(**{"penalty": None, **plugins})
    grid = [dict(lr=lr, random_state=s) for lr, s in zip((0.01, 0.05), seeds)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    if "replay" in plugins and isinstance(plugins["replay"], AGEM):
        assert all(e.replay_.n_projected_ > 0 for e in together)
    _assert_same(together, _alone(base, grid, X, y, t))
    # A callback at every batch trains on the module's own autograd.
    on_module = clone(base).set_params(callbacks=[("batches", BatchCounter())])
    _assert_same(together, _alone(on_module, grid, X, y, t))


@pytest.mark.parametrize(
    "module, seeds",
    [(_sequential, (0, 0, 0)), (_sequential, (0, 1, 2)), (Custom, (0, 0, 0))],
    ids=["batched-one-seed", "batched-seeds", "vmap-one-seed"],
)
def test_candidates_with_their_own_streams_equal_alone(stream, module, seeds):
    X, y, t = stream
    rng = np.random.RandomState(1)
    streams = [(X[:, rng.permutation(64)], y, t) for _ in seeds]
    base = _base(module=module().double())
    estimators = [clone(base).set_params(random_state=seed) for seed in seeds]
    Xs, ys, ts = zip(*streams, strict=True)
    together, reason = fit_together(estimators, Xs, ys, ts, own_data=True)
    assert reason is None
    alone = [
        clone(base).set_params(random_state=seed).fit(X_k, y_k, task_id=t_k)
        for seed, (X_k, y_k, t_k) in zip(seeds, streams, strict=True)
    ]
    _assert_same(together, alone)


def test_streams_of_other_shapes_train_alone(stream):
    X, y, t = stream
    estimators = [_base(), _base()]
    short = t < 2
    together, reason = fit_together(
        estimators, [X, X[short]], [y, y[short]], [t, t[short]], own_data=True
    )
    assert reason == "their streams differ in tasks or shapes"
    assert [e.tasks_ for e in together] == [[0, 1, 2], [0, 1]]


def test_candidates_differing_in_the_optimizers_scalars_share_the_network(stream):
    X, y, t = stream
    base = _base(optimizer=torch.optim.AdamW)
    grid = [
        {"lr": 0.01, "optimizer__weight_decay": 0.0, "optimizer__betas": (0.9, 0.99)},
        {"lr": 0.002, "optimizer__weight_decay": 0.1, "optimizer__eps": 1e-6},
    ]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X, y, t))


def test_candidates_with_different_penalties_share_the_network(stream):
    X, y, t = stream
    base = _base(lr=0.05)
    estimators = [
        clone(base).set_params(penalty=penalty)
        for penalty in (EWC(lam=10.0), L2(lam=1.0), None)
    ]
    together, reason = fit_together([clone(e) for e in estimators], X, y, t)
    assert reason is None
    _assert_same(together, [e.fit(X, y, task_id=t) for e in estimators])


@pytest.mark.parametrize("module", ["mlp", "sequential"])
def test_differently_seeded_candidates_draw_their_own_batches_and_masks(stream, module):
    X, y, t = stream
    params = (
        dict(module=MLP, module__hidden_sizes=(24,), module__dropout=0.3)
        if module == "mlp"
        else dict(module=_sequential(0.3))
    )
    base = _base(**params, lr=0.05)
    grid = [dict(random_state=seed) for seed in (0, 1, 2)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X.astype(np.float32), y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X.astype(np.float32), y, t), atol=1e-5)


def test_vmap_cannot_draw_masks_per_seed_so_they_train_alone(stream):
    X, y, t = stream
    base = _base(module=Custom().double())
    grid = [dict(random_state=0), dict(random_state=1)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert "vmap cannot" in reason
    _assert_same(together, _alone(base, grid, X, y, t), atol=0)


def test_differently_seeded_candidates_stack_under_vmap_without_randomness(stream):
    X, y, t = stream

    class Plain(Custom):
        def forward(self, X):
            return self.out(torch.tanh(self.hidden(X)))

    base = _base(module=Plain().double())
    grid = [dict(random_state=0, lr=0.05), dict(random_state=1, lr=0.02)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X, y, t))


def test_a_negative_strength_is_refused_stacked_as_alone(stream):
    X, y, t = stream
    base = _base(penalty=L2())
    grid = [dict(lr=0.02, penalty__lam=-1.0), dict(lr=0.02, penalty__lam=0.5)]
    together, _ = fit_together([clone(base).set_params(**p) for p in grid], X, y, t)
    with pytest.raises(ValueError) as alone_error:
        clone(base).set_params(**grid[0]).fit(X, y, task_id=t)
    assert type(together[0]) is type(alone_error.value)
    assert str(together[0]) == str(alone_error.value)
    assert "lam" in str(together[0])
    _assert_same(together[1:], _alone(base, grid[1:], X, y, t))


def test_a_diverging_candidate_fails_alone(stream):
    X, y, t = stream
    base = _base(penalty=EWC(lam=1.0), penalty_step="explicit", momentum=0.9)
    grid = [dict(lr=0.05), dict(lr=1e6), dict(lr=0.01)]
    together, _ = fit_together([clone(base).set_params(**p) for p in grid], X, y, t)
    with pytest.raises(FloatingPointError) as alone_error:
        clone(base).set_params(**grid[1]).fit(X, y, task_id=t)
    assert isinstance(together[1], FloatingPointError)
    assert str(together[1]) == str(alone_error.value)
    _assert_same([together[0], together[2]], _alone(base, [grid[0], grid[2]], X, y, t))


@pytest.mark.parametrize(
    "params, reason",
    [
        (
            dict(callbacks=[("batches", BatchCounter())]),
            "callbacks act at every batch (on_batch_end)",
        ),
        (dict(penalty=[EWC(), Unstackable()]), "plug-in Unstackable acts at every"),
        (
            dict(optimizer=torch.optim.ASGD, penalty_step="explicit"),
            "optimizer is ASGD",
        ),
        (dict(optimizer__maximize=True, penalty=None), "its SGD sets maximize"),
    ],
    ids=["callbacks", "undeclared", "asgd", "maximize"],
)
def test_what_cannot_stack_trains_alone_with_the_reason(stream, params, reason):
    X, y, t = stream
    base = _base(**params)
    grid = [dict(lr=0.01), dict(lr=0.05)]
    together, why = fit_together([clone(base).set_params(**p) for p in grid], X, y, t)
    assert reason in why
    _assert_same(together, _alone(base, grid, X, y, t), atol=0)


def test_candidates_differing_in_what_builds_the_network_train_alone(stream):
    X, y, t = stream
    base = _base()
    estimators = [clone(base), clone(base).set_params(batch_size=20, max_epochs=1)]
    together, why = fit_together(estimators, X, y, t)
    assert why == "the candidates differ in batch_size, max_epochs"
    assert all(not isinstance(e, BaseException) for e in together)


def test_a_group_larger_than_the_memory_bound_trains_in_parts(stream, monkeypatch):
    X, y, t = stream
    base = _base()
    one = vectorized_fit._stacked_bytes(clone(base).fit(X[:20], y[:20]))
    monkeypatch.setattr(vectorized_fit, "STACK_BYTES", 2 * one)
    calls = []
    train = vectorized_fit.train_chunk
    monkeypatch.setattr(
        vectorized_fit,
        "train_chunk",
        lambda nets, *a, **k: calls.append(len(nets)) or train(nets, *a, **k),
    )
    grid = GRID[:5]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None and set(calls) == {2, 1}
    _assert_same(together, _alone(base, grid, X, y, t))


def test_multi_head_classifier_and_regressor(stream):
    X, y, t = stream
    y_split = y % 2 + 2 * t
    base = _base(multi_head=True, module=_sequential(outputs=6))
    grid = GRID[:4]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y_split, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X, y_split, t))
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    regressor = ContinualRegressor(
        module=module, penalty=EWC(), batch_size=10, max_epochs=2, random_state=0
    )
    targets = np.c_[X[:, :3].sum(1), X[:, 3:9].mean(1)]
    together, reason = fit_together(
        [clone(regressor).set_params(**p) for p in grid], X, targets, t
    )
    assert reason is None
    _assert_same(together, _alone(regressor, grid, X, targets, t))


def test_the_stacked_forward_equals_each_copy_and_draws_its_masks(stream):
    X = torch.as_tensor(stream[0][:10])
    modules = [_sequential(0.5) for _ in range(3)]
    for i, module in enumerate(modules):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(i)
    network = StackedNetwork(modules)
    assert network.batched
    torch.manual_seed(5)
    stacked = network(X, shared=True)
    for module, out in zip(modules, stacked, strict=True):
        torch.manual_seed(5)
        np.testing.assert_allclose(out.detach(), module(X).detach(), atol=1e-12)


@pytest.mark.parametrize(
    "activation", [nn.ReLU, nn.Tanh, nn.Sigmoid, lambda: nn.LeakyReLU(0.1)]
)
@pytest.mark.parametrize("criterion", [nn.CrossEntropyLoss, nn.MSELoss])
@pytest.mark.parametrize("seeded", [False, True], ids=["shared-masks", "own-masks"])
def test_the_hand_written_pass_equals_autograd(activation, criterion, seeded):
    torch.manual_seed(0)
    modules = [
        nn.Sequential(
            nn.Dropout(0.2),
            nn.Linear(6, 5),
            activation(),
            nn.Dropout(0.3),
            nn.Linear(5, 3),
        ).double()
        for _ in range(3)
    ]
    generators = None
    if seeded:
        generators = [torch.Generator().manual_seed(s) for s in range(3)]
    network = StackedNetwork(modules, generators)
    hand = by_hand(network, criterion(reduction="none"))
    assert hand is not None
    X = torch.randn(4, 6, dtype=torch.float64)
    targets = (
        torch.tensor([0, 2, 0, 2])
        if criterion is nn.CrossEntropyLoss
        else torch.randn(4, 3, dtype=torch.float64)
    )
    mask = (
        torch.tensor([True, False, True]) if criterion is nn.CrossEntropyLoss else None
    )
    states = [g.get_state() for g in generators] if seeded else None
    torch.manual_seed(1)
    with torch.no_grad():
        grads = network.split(torch.empty_like(network.flat))
        losses, logits = hand(X, targets, True, mask, grads)
    if seeded:
        for g, state in zip(generators, states, strict=True):
            g.set_state(state)
    torch.manual_seed(1)
    out = network(X, True)
    assert torch.equal(logits, out.detach())  # the same forward, the same masks
    if mask is not None:
        out = out.masked_fill(~mask, float("-inf"))
    K = len(modules)
    expected = criterion(reduction="none")(
        out.flatten(0, 1), targets.expand(K, *targets.shape).flatten(0, 1)
    )
    expected = expected.reshape(K, -1).mean(1)
    expected.sum().backward()
    np.testing.assert_allclose(losses, expected.detach(), rtol=1e-12)
    for grad, p in zip(grads, network.params, strict=True):
        np.testing.assert_allclose(grad, p.grad, rtol=1e-10, atol=1e-14)


def test_layers_without_a_known_derivative_use_autograd():
    modules = [nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))] * 2
    network = StackedNetwork(modules)
    assert network.batched
    assert by_hand(network, nn.CrossEntropyLoss(reduction="none")) is None
    assert by_hand(network, nn.L1Loss(reduction="none")) is None


def _linear_stack(*middle):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), *middle, nn.Linear(16, 10))


@pytest.mark.parametrize(
    "make_module",
    [
        # A frozen square layer: stacked untransposed, it must not take the
        # batched path.
        lambda: _frozen(_linear_stack(nn.Linear(16, 16), nn.ReLU()), 2),
        # A layer used twice: its gradients add up.
        lambda: _linear_stack(*[_shared_layer] * 2),
        # Batch normalization, whose statistics must not move before training.
        lambda: _linear_stack(nn.BatchNorm1d(16)),
    ],
    ids=["frozen", "tied", "batch-norm"],
)
def test_unusual_networks_end_as_they_would_alone(stream, make_module):
    X, y, t = stream
    base = _base(module=make_module().double())
    grid = [dict(lr=0.05, random_state=1), dict(lr=0.1, random_state=2)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, X, y, t))


_shared_layer = nn.Sequential(nn.Linear(16, 16), nn.ReLU())


def _frozen(module, index):
    module[index].weight.requires_grad_(False)
    return module


class Scaled(nn.Module):
    def __init__(self, scale):
        super().__init__()
        torch.manual_seed(0)
        self.scale, self.linear = scale, nn.Linear(64, 10)

    def forward(self, X):
        return self.linear(X) * self.scale


def test_module_instances_differing_in_an_attribute_train_alone(stream):
    X, y, t = stream
    estimators = [_base(module=Scaled(s).double()) for s in (1.0, 3.0)]
    together, reason = fit_together([clone(e) for e in estimators], X, y, t)
    assert reason == "the candidates differ in module"
    _assert_same(together, [e.fit(X, y, task_id=t) for e in estimators], atol=0)


def test_an_error_of_one_candidate_fails_that_candidate_only(stream):
    X, y, t = stream
    base = _base()
    grid = [dict(penalty__batch_size=0), dict(penalty__batch_size=1024)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    with pytest.raises(ValueError) as alone_error:
        clone(base).set_params(**grid[0]).fit(X, y, task_id=t)
    assert type(together[0]) is type(alone_error.value)
    assert str(together[0]) == str(alone_error.value)
    _assert_same(together[1:], _alone(base, grid[1:], X, y, t))


def test_linear_layers_on_images_stack_under_vmap(stream):
    X, y, t = stream
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Flatten(), nn.Linear(32, 10))
    base = _base(module=module.double())
    images = X.reshape(-1, 8, 8)
    grid = [dict(lr=0.01), dict(lr=0.05)]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], images, y, t
    )
    assert reason is None
    _assert_same(together, _alone(base, grid, images, y, t))


def test_a_stacked_forward_that_fails_falls_back_to_training_alone(stream, monkeypatch):
    X, y, t = stream
    base = _base()
    grid = [dict(lr=0.01), dict(lr=0.05)]
    alone = _alone(base, grid, X, y, t)

    forward = StackedNetwork.forward

    def fail(self, X, shared, tape=None):
        if self.size > 1:
            raise RuntimeError("no kernel")
        return forward(self, X, shared, tape)

    monkeypatch.setattr(StackedNetwork, "forward", fail)
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason == "their stacked training failed (RuntimeError: no kernel)"
    _assert_same(together, alone, atol=0)


def test_a_subclass_overriding_a_stackable_hook_is_not_stacked(stream):
    class MySI(SI):
        def after_step(self, net, step):
            super().after_step(net, step)

    X, y, t = stream
    base = _base(penalty=MySI())
    together, reason = fit_together(
        [clone(base).set_params(lr=lr) for lr in (0.01, 0.05)], X, y, t
    )
    assert reason == (
        "its plug-in MySI acts at every step (after_step) in hooks that do not stack"
    )


def test_candidates_out_of_step_train_alone(stream):
    X, y, t = stream
    base = _base(classes=np.arange(10))
    first, second = (t == 0), (t == 1)
    ahead = clone(base).partial_fit(X[first], y[first], task_id=0)
    behind = clone(base)
    twins = [clone(base).partial_fit(X[first], y[first], task_id=0), clone(base)]
    together, reason = fit_together(
        [ahead, behind], X[second], y[second], t[second], partial=True
    )
    assert reason == "the candidates have trained different tasks"
    expected = [e.partial_fit(X[second], y[second], task_id=1) for e in twins]
    _assert_same(together, expected, atol=0)


def test_a_net_class_that_overrides_the_loop_trains_alone(stream):
    from skcl._net import _ClassifierNet

    class LoggingNet(_ClassifierNet):
        def train_chunk(self, X, y, **kwargs):
            return super().train_chunk(X, y, **kwargs)

    class Logging(ContinualClassifier):
        _net_class = LoggingNet

    X, y, t = stream
    estimators = [
        Logging(module=_sequential(), lr=lr, random_state=0) for lr in (0.01, 0.1)
    ]
    together, reason = fit_together(estimators, X, y, t)
    assert reason == "its net class LoggingNet overrides train_chunk"
