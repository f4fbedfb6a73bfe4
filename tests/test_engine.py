"""One engine for one model or many: hooks, settings and transactions at every K."""

import dataclasses

import numpy as np
import pytest
import torch
from _equality import same
from _tolerance import tolerance, training_operations
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from test_transactions import state_of as transaction_state
from torch import nn

from skcl import ContinualClassifier, Plugin
from skcl._engine import _fit as vectorized_fit
from skcl._engine import fit_together
from skcl._engine._settings import PER_CANDIDATE, ChunkSettings, stacking_reason
from skcl.penalties import EWC, SI, LwF


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small networks train fastest with one thread."""


@pytest.fixture(scope="module")
def stream():
    """Two permuted-digits tasks of 100 images, float64."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    tasks = [X[:100, rng.permutation(64)] / 16 for _ in range(2)]
    return np.vstack(tasks), np.tile(y[:100], 2), np.repeat([0, 1], 100)


def state_of(clf):
    """Everything training changes but timings, non-persistent buffers included."""
    state = list(transaction_state(clf))
    state[6] = None  # the callbacks: the epoch timer's clock
    state[7] = [{k: v for k, v in e.items() if k != "dur"} for e in state[7]]
    buffers = {k: v.clone() for k, v in clf.module_.named_buffers()}
    return state, buffers


def _classifier(**params):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    defaults = dict(module=module, batch_size=10, max_epochs=2, random_state=0)
    return ContinualClassifier(**{**defaults, **params})


class StepCounter(Plugin):
    """Counts the steps of its candidate; its after_step runs stacked."""

    stackable_steps = ("after_step",)

    def initialize(self, net):
        self.steps_ = 0

    def after_step(self, net, step):
        self.steps_ += 1


class UndeclaredCounter(StepCounter):
    """The same hook, overridden without declaring it stackable again."""

    def after_step(self, net, step):
        self.steps_ += 1


def test_a_declared_hook_acts_at_every_k(stream):
    X, y, t = stream
    grid = [dict(lr=0.01), dict(lr=0.05)]
    base = _classifier(penalty=StepCounter())
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    alone = [clone(base).set_params(**p).fit(X, y, task_id=t) for p in grid]
    assert reason is None
    # 2 tasks x 2 epochs x 10 batches.
    assert [e.penalty_.steps_ for e in together] == [40, 40]
    assert [e.penalty_.steps_ for e in alone] == [40, 40]


def test_an_undeclared_hook_acts_alone_and_refuses_to_stack(stream):
    X, y, t = stream
    base = _classifier(penalty=UndeclaredCounter())
    together, reason = fit_together(
        [clone(base).set_params(lr=lr) for lr in (0.01, 0.05)], X, y, t
    )
    assert reason == (
        "its plug-in UndeclaredCounter acts at every step (after_step) in hooks "
        "that do not stack"
    )
    assert [e.penalty_.steps_ for e in together] == [40, 40]


def test_a_loss_term_declared_stackable_is_refused(stream):
    class StackedLwF(LwF):
        stackable_steps = ("loss",)

        def loss(self, net, step):
            return super().loss(net, step)

    X, y, t = stream
    base = _classifier(penalty=StackedLwF())
    _, reason = fit_together([clone(base), clone(base).set_params(lr=0.05)], X, y, t)
    assert reason.startswith("its plug-in StackedLwF acts at every step (loss)")


def test_every_setting_says_how_candidates_share_it():
    for field in dataclasses.fields(ChunkSettings):
        assert field.metadata.get("stacked") in ("shared", PER_CANDIDATE), field.name


def test_a_setting_without_a_stacking_rule_refuses_to_stack(stream, monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class WithClipping(ChunkSettings):
        clip_norm: float = 1.0

    settings = WithClipping(
        epochs=1, batch_size=10, lr=0.1, momentum=0.9, penalty_step="implicit",
        output_mask=None,
    )  # fmt: skip
    assert stacking_reason([settings, settings]) == (
        "the setting clip_norm does not say how candidates share it"
    )
    monkeypatch.setattr("skcl._base.ChunkSettings", WithClipping)
    X, y, t = stream
    _, reason = fit_together([_classifier(), _classifier(lr=0.05)], X, y, t)
    assert reason == (
        "their stacked training failed (ValueError: the nets cannot train stacked: "
        "the setting clip_norm does not say how candidates share it)"
    )


def test_candidates_differing_in_a_shared_setting_refuse_to_stack():
    mask = torch.tensor([True, False])
    settings = [
        ChunkSettings(
            epochs=1,
            batch_size=10,
            lr=0.1,
            momentum=None,
            penalty_step="implicit",
            output_mask=m,
        )
        for m in (mask, ~mask)
    ]
    assert (
        stacking_reason(settings) == "the candidates differ in the setting output_mask"
    )


def test_lwf_and_si_train_a_second_task_together(stream):
    # SI reads the task loss's gradient alone: the task loss backpropagates
    # first, then LwF's term, which reads the same forward pass.
    X, y, t = stream
    clf = _classifier(penalty=[LwF(lam=1.0), SI(lam=0.5)]).fit(X, y, task_id=t)
    assert clf.tasks_ == [0, 1]
    assert all(torch.isfinite(w).all() for w in clf.penalty_[1].importance_)


class Counted(nn.Module):
    """Counts its training forward passes in a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden, self.out = nn.Linear(64, 16), nn.Linear(16, 10)
        self.register_buffer("calls", torch.zeros(()), persistent=False)

    def forward(self, X):
        if self.training:
            self.calls += 1
        return self.out(torch.relu(self.hidden(X)))


def test_a_failed_chunk_restores_non_persistent_buffers(stream):
    X, y, t = stream
    clf = _classifier(module=Counted().double()).fit(X[t == 0], y[t == 0])
    calls = clf.module_.calls.clone()
    with pytest.raises(FloatingPointError):
        clf.partial_fit(X[t == 1] * 1e300, y[t == 1])
    assert torch.equal(clf.module_.calls, calls)


def test_a_diverging_candidate_is_restored_to_before_its_chunk(stream):
    X, y, t = stream
    grid = [dict(penalty__lam=1.0), dict(penalty__lam=1e308), dict(penalty__lam=2.0)]
    base = _classifier(
        module=Counted().double(), penalty=EWC(lam=1.0), penalty_step="explicit"
    )
    fitted = [clone(base).fit(X[t == 0], y[t == 0]).set_params(**p) for p in grid]
    alone = clone(base).fit(X[t == 0], y[t == 0]).set_params(**grid[1])
    with pytest.raises(FloatingPointError):
        alone.partial_fit(X[t == 1], y[t == 1], task_id=1)
    together, reason = fit_together(fitted, X[t == 1], y[t == 1], 1, partial=True)
    assert reason is None
    assert isinstance(together[1], FloatingPointError)
    assert same(state_of(fitted[1]), state_of(alone))
    assert fitted[0].tasks_ == [0, 1]


def test_an_interrupted_stacked_chunk_is_undone_for_every_candidate(
    stream, monkeypatch
):
    X, y, t = stream
    grid = [dict(lr=0.05), dict(lr=0.01)]
    fitted = [
        clone(_classifier()).set_params(**p).fit(X[t == 0], y[t == 0]) for p in grid
    ]
    before = [state_of(e) for e in fitted]
    train = vectorized_fit.train_chunk

    def interrupted(nets, *args, **kwargs):
        train(nets, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(vectorized_fit, "train_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit_together(fitted, X[t == 1], y[t == 1], 1, partial=True)
    for estimator, state in zip(fitted, before, strict=True):
        assert same(state_of(estimator), state)


class LogitDecay(Plugin):
    """A loss term written from scratch: a pull of the outputs toward zero,
    run once per candidate in a stack (each with its own ``scale``)."""

    candidate_steps = ("loss", "after_step")

    def __init__(self, *, scale=0.1):
        self.scale = scale

    def initialize(self, net):
        self.steps_ = 0

    def loss(self, net, step):
        return self.scale * step.logits.square().mean()

    def after_step(self, net, step):
        self.steps_ += 1


def test_a_per_candidate_plugin_written_from_scratch_stacks(stream):
    X, y, t = stream
    grid = [dict(penalty__scale=0.0), dict(penalty__scale=0.5)]
    base = _classifier(penalty=LogitDecay())
    together, reason = fit_together(
        [clone(base).set_params(**p) for p in grid], X, y, t
    )
    alone = [clone(base).set_params(**p).fit(X, y, task_id=t) for p in grid]
    assert reason is None
    assert [e.penalty_.steps_ for e in together] == [40, 40]
    for a, b in zip(together, alone, strict=True):
        # float64: the rounding of 2 epochs of 2 tasks of 100 samples.
        atol = tolerance(training_operations(b.module_, 400), 1.0)
        for p, q in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=atol)
    weights = [e.module_[2].weight for e in together]
    assert not torch.allclose(weights[0], weights[1])


def test_pipelines_train_their_final_estimators_together(stream):
    X, y, t = stream
    pipe = make_pipeline(StandardScaler(), _classifier())
    grid = [dict(continualclassifier__lr=lr) for lr in (0.01, 0.05)]
    together, reason = fit_together(
        [clone(pipe).set_params(**p) for p in grid], X, y, t
    )
    assert reason is None
    for fitted, params in zip(together, grid, strict=True):
        alone = clone(pipe).set_params(**params)
        Xt = alone[:-1].fit_transform(X, y)  # what Pipeline.fit does, task_id routed
        alone[-1].fit(Xt, y, task_id=t)
        # float64: the rounding of 2 epochs of 2 tasks of 100 samples.
        atol = tolerance(training_operations(alone[-1].module_, 400), 1.0)
        for p, q in zip(
            fitted[-1].module_.parameters(), alone[-1].module_.parameters(), strict=True
        ):
            torch.testing.assert_close(p, q, rtol=0, atol=atol)
        assert fitted[-1].tasks_ == alone[-1].tasks_ == [0, 1]
    outcomes, reason = fit_together([clone(pipe) for _ in grid], X, y, t, partial=True)
    assert reason == "a Pipeline has no partial_fit"
    assert all(isinstance(o, TypeError) for o in outcomes)


class SmoothedLoss(Plugin):
    """Trains on a label-smoothed cross-entropy in place of the criterion."""

    def task_loss(self, net, step):
        return nn.functional.cross_entropy(
            step.logits, step.targets, label_smoothing=0.1
        )


def test_a_replaced_task_loss_trains_as_that_criterion(stream):
    X, y, t = stream
    replaced = _classifier(penalty=SmoothedLoss()).fit(X, y, task_id=t)
    criterion = _classifier(criterion__label_smoothing=0.1).fit(X, y, task_id=t)
    # float64: the rounding of 2 epochs of 2 tasks of 100 samples (the
    # criterion trains on the batched kernels, the plug-in on the module).
    atol = tolerance(training_operations(criterion.module_, 400), 1.0)
    for p, q in zip(
        replaced.module_.parameters(), criterion.module_.parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=0, atol=atol)
    np.testing.assert_allclose(
        replaced.net_.history[:, "train_loss"],
        criterion.net_.history[:, "train_loss"],
        rtol=0,
        atol=atol,
    )
    assert "penalty" not in replaced.net_.history[-1]


def test_two_plugins_replacing_the_task_loss_are_refused_before_training(stream):
    X, y, t = stream
    clf = _classifier(penalty=[SmoothedLoss(), SmoothedLoss()])
    with pytest.raises(ValueError, match=r"each replace the task loss"):
        clf.fit(X, y, task_id=t)
    assert not hasattr(clf, "net_")


def test_a_replaced_task_loss_never_stacks(stream):
    class DeclaredSmoothedLoss(SmoothedLoss):
        candidate_steps = ("task_loss",)

    X, y, t = stream
    for plugin in (SmoothedLoss(), DeclaredSmoothedLoss()):
        base = _classifier(penalty=plugin)
        together, reason = fit_together(
            [clone(base), clone(base).set_params(lr=0.05)], X, y, t
        )
        assert reason == (
            f"its plug-in {type(plugin).__name__} acts at every step (task_loss) "
            "in hooks that do not stack"
        )
        alone = clone(base).fit(X, y, task_id=t)
        assert same(
            list(together[0].module_.state_dict().values()),
            list(alone.module_.state_dict().values()),
        )
