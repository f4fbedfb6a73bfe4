"""Randomness owned by the estimator: fits in threads equal the same fits in turn.

Every estimator draws from its own generators (``net_.generator_`` for the
plug-ins), never from torch's global one: two fits running in two threads
draw what they draw one after the other, and torch's global generator is
left as it was. Each test here failed when chunks seeded the global
generator (fits in threads drew from each other's stream).
"""

import copy
import threading

import joblib
import numpy as np
import pytest
import torch
from _tolerance import tolerance, training_operations
from sklearn.base import clone
from torch import nn

from skcl import ContinualClassifier, Plugin
from skcl._engine import fit_together
from skcl._engine._random import drawing_globally
from skcl.model_selection import RegimeSearchCV
from skcl.penalties import EWC, ShrinkAndPerturb
from skcl.replay import ER

REPEATS = 3

STRATEGIES = {
    "dropout": dict(module__dropout=0.3),
    "er": dict(replay=ER(memory_size=40, memory_batch_size=10)),
    "ewc-sampled": dict(penalty=EWC(lam=10.0, fisher="sampled", n_samples=60)),
    "shrink-perturb": dict(penalty=ShrinkAndPerturb(shrink=1e-3, noise=1e-2)),
}


class Noisy(nn.Module):
    """A module that draws from torch's global generator by itself."""

    def __init__(self, input_dim, output_dim, hidden_sizes=(16,)):
        super().__init__()
        self.hidden = nn.Linear(input_dim, hidden_sizes[0])
        self.out = nn.Linear(hidden_sizes[0], output_dim)

    def forward(self, X):
        h = torch.relu(self.hidden(X))
        if self.training:
            h = h + 0.1 * torch.randn(h.shape, dtype=h.dtype)
        return self.out(h)


@pytest.fixture(scope="module")
def stream():
    """Two tasks of 100 digits each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data[:100] / 16).astype(np.float32)
    y = digits.target[:100]
    return np.vstack([X, X[:, ::-1]]), np.tile(y, 2), np.repeat([0, 1], len(X))


def _classifier(seed, **params):
    defaults = dict(
        module__hidden_sizes=(16,),
        batch_size=10,
        max_epochs=2,
        lr=0.05,
        random_state=seed,
    )
    return ContinualClassifier(**{**defaults, **params})


def _weights(estimator):
    return torch.cat([p.detach().flatten() for p in estimator.module_.parameters()])


def _in_threads(jobs):
    """Run ``jobs`` (callables) in one thread each, started together."""
    results = [None] * len(jobs)
    errors = []
    barrier = threading.Barrier(len(jobs))

    def run(i):
        try:
            barrier.wait()
            results[i] = jobs[i]()
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _fits(stream, params):
    X, y, t = stream
    return [
        lambda seed=seed: _weights(_classifier(seed, **params).fit(X, y, task_id=t))
        for seed in (0, 1)
    ]


@pytest.mark.parametrize("params", STRATEGIES.values(), ids=STRATEGIES)
def test_fits_in_threads_equal_fits_in_turn(stream, params, one_torch_thread):
    jobs = _fits(stream, params)
    in_turn = [job() for job in jobs]
    assert not torch.equal(*in_turn)  # the seeds differ
    for _ in range(REPEATS):
        state = torch.get_rng_state()
        threaded = _in_threads(jobs)
        assert torch.equal(state, torch.get_rng_state())
        for a, b in zip(threaded, in_turn, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("params", STRATEGIES.values(), ids=STRATEGIES)
def test_a_fit_neither_reads_nor_changes_the_global_generator(stream, params):
    X, y, t = stream
    fitted = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        fitted.append(_weights(_classifier(0, **params).fit(X, y, task_id=t)))
        assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(*fitted)


@pytest.mark.parametrize("name", ["dropout", "er", "ewc-sampled"])
def test_training_ignores_another_thread_drawing_from_the_global_generator(
    stream, name, one_torch_thread
):
    """Without a module or layer that draws globally, a chunk never touches
    the global generator, whatever other threads draw from it (building the
    network does: it runs before the other thread starts)."""
    X, y, t = stream
    first = _classifier(0, **STRATEGIES[name]).fit(X[t == 0], y[t == 0])

    def job():
        trained = copy.deepcopy(first)
        return _weights(trained.partial_fit(X[t == 1], y[t == 1], task_id=1))

    reference = job()
    stop = threading.Event()

    def draw():
        while not stop.is_set():
            torch.rand(64)

    drawer = threading.Thread(target=draw)
    drawer.start()
    try:
        trained = [job() for _ in range(REPEATS)]
    finally:
        stop.set()
        drawer.join()
    for weights in trained:
        assert torch.equal(weights, reference)


def test_a_module_that_draws_by_itself_trains_as_in_turn(stream, one_torch_thread):
    """Its chunks hold a process-wide lock with the global generator forked and
    loaded from the estimator's generator (docs/reliability.md)."""
    jobs = _fits(stream, dict(module=Noisy, replay=ER(memory_size=20)))
    in_turn = [job() for job in jobs]
    for _ in range(REPEATS):
        state = torch.get_rng_state()
        threaded = _in_threads(jobs)
        assert torch.equal(state, torch.get_rng_state())
        for a, b in zip(threaded, in_turn, strict=True):
            assert torch.equal(a, b)


def test_a_threaded_search_equals_the_sequential_one(stream, one_torch_thread):
    X, y, t = stream
    grid = {
        "lr": [0.02, 0.1],
        "module__dropout": [0.0, 0.3],
        "random_state": [0, 1],
    }

    def search(n_jobs):
        return RegimeSearchCV(
            _classifier(0, max_epochs=1), grid, cv=2, n_jobs=n_jobs
        ).fit(X, y, task_id=t)

    state = torch.get_rng_state()
    reference = search(1)
    assert torch.equal(state, torch.get_rng_state())
    assert not any(reference.cv_results_["vectorize_fallback"])  # stacked
    for _ in range(REPEATS):
        with joblib.parallel_backend("threading", n_jobs=2):
            threaded = search(2)
        assert torch.equal(state, torch.get_rng_state())
        for key, value in reference.cv_results_.items():
            if key.startswith(("split", "mean_test")):
                np.testing.assert_array_equal(threaded.cv_results_[key], value)


class Recorder(Plugin):
    """Draws one number with ``net.generator_`` in every hook."""

    candidate_steps = ("after_step",)

    def initialize(self, net):
        self.draws_ = {"initialize": [self._draw(net)]}

    def _draw(self, net):
        assert isinstance(net.generator_, torch.Generator)
        return torch.rand((), generator=net.generator_).item()

    def _record(self, hook, net):
        self.draws_.setdefault(hook, []).append(self._draw(net))

    def begin_task(self, net):
        self._record("begin_task", net)

    def after_step(self, net, step):
        self._record("after_step", net)

    def consolidate(self, net, X, y):
        self._record("consolidate", net)

    def end_task(self, net):
        self._record("end_task", net)


def test_plugins_draw_from_the_chunk_generator_alone_and_stacked(stream):
    X, y, t = stream
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10)
    ).double()
    base = ContinualClassifier(
        module=module,
        penalty=Recorder(),
        batch_size=10,
        max_epochs=2,
        lr=0.05,
        random_state=0,
    )
    grid = [dict(lr=0.05), dict(lr=0.1)]
    alone = [clone(base).set_params(**p).fit(X, y, task_id=t) for p in grid]
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    draws = alone[0].penalty_.draws_
    assert {k: len(v) for k, v in draws.items()} == {
        "initialize": 1,
        "begin_task": 2,
        "after_step": 40,
        "consolidate": 2,
        "end_task": 1,
    }
    assert alone[0].net_.generator_ is None  # set only while a chunk runs
    # Alone on the module's autograd, stacked by hand: equal up to rounding,
    # eps * 3 multiply-adds per parameter per sample trained, if the dropout
    # masks are the same.
    atol = tolerance(training_operations(module, 2 * len(X)), _weights(alone[0]))
    for a, b in zip(alone, together, strict=True):
        assert a.penalty_.draws_ == b.penalty_.draws_
        torch.testing.assert_close(_weights(a), _weights(b), rtol=0, atol=atol)
    again = clone(base).set_params(**grid[0]).fit(X, y, task_id=t)
    assert again.penalty_.draws_ == draws
    seeded = clone(base).set_params(random_state=1).fit(X, y, task_id=t)
    assert seeded.penalty_.draws_["after_step"] != draws["after_step"]


def test_drawing_globally_draws_the_generators_stream_and_restores_the_global():
    generator = torch.Generator().manual_seed(3)
    expected = torch.rand(6, generator=torch.Generator().manual_seed(3))
    state = torch.get_rng_state()
    drawn = []
    for _ in range(2):
        with drawing_globally(generator):
            drawn.append(torch.rand(3))  # torch's global generator, as layers draw
    assert torch.equal(torch.cat(drawn), expected)
    assert torch.equal(state, torch.get_rng_state())
