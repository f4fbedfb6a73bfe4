"""A failed or interrupted chunk leaves the estimator as it was before it."""

import copy

import numpy as np
import pytest
import torch
from _equality import same
from skorch.callbacks import Callback

import skcl._engine._chunk as chunk
from skcl import ContinualClassifier
from skcl._engine import fit_together
from skcl._plugin import Plugin
from skcl.penalties import EWC, MAS, SI, LwF


class InterruptAt(Callback):
    """Raises KeyboardInterrupt at the given training batch of the given task,
    once: a rolled-back chunk also rolls back ``count``, so the one-shot flag
    lives on the class."""

    fired = False

    def __init__(self, task_index, batch):
        self.task_index = task_index
        self.batch = batch

    def initialize(self):
        self.count = 0
        return self

    def on_batch_end(self, net, **kwargs):
        if net.task_index_ == self.task_index:
            self.count += 1
            if self.count == self.batch and not type(self).fired:
                type(self).fired = True
                raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def _rearmed():
    InterruptAt.fired = False


def make(**params):
    defaults = dict(
        penalty=[EWC(lam=10.0), SI(lam=0.1, xi=0.1)],
        module__dropout=0.1,
        max_epochs=2,
        lr=0.05,
        batch_size=10,
        random_state=0,
    )
    return ContinualClassifier(**{**defaults, **params})


def state_of(clf):
    """A copy of everything training changes."""
    return copy.deepcopy(
        (
            clf.tasks_,
            clf.snapshots_,
            clf.module_.state_dict(),
            clf.net_.optimizer_.state_dict(),
            [vars(p) for p in clf.penalty_],
            len(clf.net_.history),
            clf._rng.get_state(),
        )
    )


def test_interrupted_fit_keeps_the_completed_tasks_and_resumes(digits_stream):
    X, y, t = digits_stream
    # The same backend everywhere (callbacks at every batch), for bitwise equality.
    never = dict(callbacks=[InterruptAt(task_index=99, batch=1)])
    reference = make(**never).fit(X, y, task_id=t)
    interrupted = make(callbacks=[InterruptAt(task_index=2, batch=7)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(X, y, task_id=t)
    completed = make(**never).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    assert interrupted.tasks_ == [0, 1]
    assert same(state_of(interrupted), state_of(completed))
    interrupted.partial_fit(X[t == 2], y[t == 2], task_id=2)
    np.testing.assert_array_equal(
        interrupted.predict_proba(X), reference.predict_proba(X)
    )


def test_divergence_restores_the_state_before_the_chunk(digits_stream):
    X, y, t = digits_stream
    clf = make().fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    before = state_of(clf)
    with pytest.raises(FloatingPointError, match=r"task 2.*lower\s+learning rate"):
        clf.partial_fit(X[t == 2] * 1e30, y[t == 2], task_id=2)
    assert same(state_of(clf), before)
    assert all(torch.isfinite(p).all() for p in clf.module_.parameters())
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert clf.tasks_ == [0, 1, 2]


def test_interrupting_a_continued_task_keeps_its_earlier_chunks(digits_stream):
    X, y, t = digits_stream
    clf = make(callbacks=[InterruptAt(task_index=0, batch=50)])
    clf.partial_fit(X[:150], y[:150], task_id=0, classes=np.arange(10))
    before = state_of(clf)
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X[150:300], y[150:300], task_id=0)
    assert same(state_of(clf), before)


def test_state_comparison_detects_a_change(digits_stream):
    X, y, t = digits_stream
    clf = make().fit(X[t == 0], y[t == 0])
    before = state_of(clf)
    clf.penalty_[1].omega_[0][0] += 1e-6
    assert not same(state_of(clf), before)


def test_a_last_step_that_blows_up_is_caught(digits_stream):
    """One step over 20 samples: no epoch loss is ever checked after it."""
    X, y, _ = digits_stream
    clf = ContinualClassifier(lr=1e30, max_epochs=1, batch_size=64, random_state=0)
    with pytest.raises(FloatingPointError, match="lower learning rate"):
        clf.fit(X[:20], y[:20])


@pytest.mark.parametrize("batch_size", [8, 64])
def test_no_learning_rate_returns_a_non_finite_model(digits_stream, batch_size):
    X, y, _ = digits_stream
    for lr in 10.0 ** np.arange(0, 39, 2):
        clf = ContinualClassifier(
            lr=lr, max_epochs=1, batch_size=batch_size, random_state=0
        )
        try:
            clf.fit(X[:40], y[:40])
        except FloatingPointError:
            continue
        assert np.isfinite(clf.predict_proba(X[:40])).all(), lr


@pytest.mark.parametrize(
    ("penalty", "name"),
    [(EWC(lam=1.0), "EWC's task_importance"), (MAS(lam=1.0), "MAS's")],
)
def test_an_importance_that_overflows_undoes_its_chunk(digits_stream, penalty, name):
    """A pixel at 1e25 trains finitely at a tiny lr, but its squared gradient
    overflows float32."""
    X, y, t = digits_stream
    clf = ContinualClassifier(
        penalty=penalty, max_epochs=1, lr=1e-30, batch_size=10, random_state=0
    ).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    before = copy.deepcopy(
        (clf.tasks_, clf.snapshots_, clf.module_.state_dict(), vars(clf.penalty_))
    )
    extreme = X[t == 2].copy()
    extreme[:, 10] = 1e25
    with pytest.raises(FloatingPointError, match=f"{name}.* not finite.*rescale"):
        clf.partial_fit(extreme, y[t == 2], task_id=2)
    after = (clf.tasks_, clf.snapshots_, clf.module_.state_dict(), vars(clf.penalty_))
    assert same(after, before)


class Exploding(Plugin):
    """A loss term that becomes inf while ``armed``: a constant, or a pull of
    the outputs whose gradient overflows too."""

    candidate_steps = ("loss",)  # so that it can train on the stacked backend
    armed = False

    def __init__(self, *, pull=False):
        self.pull = pull

    def loss(self, net, step):
        scale = float("inf") if type(self).armed else 0.0
        if self.pull:  # a gradient of inf and nan
            return step.logits.square().mean() * scale
        return step.logits.sum() * 0.0 + scale


class EveryBatch(Callback):
    """A batch-level callback: the chunk trains on the module backend."""

    def on_batch_end(self, net, **kwargs):
        pass


@pytest.mark.parametrize("pull", [False, True])
@pytest.mark.parametrize("backend", ["_ModuleBackend", "_StackedBackend"])
def test_a_plugin_term_that_diverges_is_named(
    digits_stream, monkeypatch, backend, pull
):
    """Alone with a batch-level callback (the module backend), or two
    candidates trained as one stack (the stacked backend)."""
    X, y, t = digits_stream
    stacked = backend == "_StackedBackend"
    callbacks = [] if stacked else [EveryBatch()]
    used = []
    real = getattr(chunk, backend)
    monkeypatch.setattr(chunk, backend, lambda *a: used.append(backend) or real(*a))
    clfs = [
        make(penalty=[EWC(lam=10.0), Exploding(pull=pull)], callbacks=callbacks).fit(
            X[t == 0], y[t == 0]
        )
        for _ in range(1 + stacked)
    ]
    before = [state_of(clf) for clf in clfs]
    monkeypatch.setattr(Exploding, "armed", True)
    if stacked:
        errors, reason = fit_together(clfs, X[t == 1], y[t == 1], 1, partial=True)
        assert reason is None
    else:
        with pytest.raises(FloatingPointError) as caught:
            clfs[0].partial_fit(X[t == 1], y[t == 1], task_id=1)
        errors = [caught.value]
    message = "task 1: the loss term of Exploding became inf at a step where"
    advice = "try a smaller strength of Exploding or check its inputs."
    for error in errors:
        assert isinstance(error, FloatingPointError)
        assert message in str(error) and str(error).endswith(advice)
        assert "learning rate" not in str(error)
    assert used and set(used) == {backend}
    assert all(same(state_of(c), b) for c, b in zip(clfs, before, strict=True))


@pytest.mark.parametrize("lr", [1e10, 1e30])
def test_a_network_that_diverges_is_not_blamed_on_a_plugin_term(digits_stream, lr):
    """Parameters that blow up make LwF's term non-finite with the task loss,
    at the same step: the training loss is named, not the plug-in."""
    X, y, t = digits_stream
    clf = make(penalty=[LwF()]).fit(X[t == 0], y[t == 0])
    clf.set_params(lr=lr)
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
