import pickle

import joblib
import numpy as np
import pytest
import torch
from _tolerance import forward_operations, tolerance, training_operations
from sklearn.base import clone
from skorch.callbacks import Callback

from skcl import ContinualClassifier, ContinualRegressor
from skcl.metrics import accuracy_matrix, forgetting
from skcl.penalties import (
    EWC,
    L2,
    MAS,
    SI,
    L2Init,
    ShrinkAndPerturb,
    output_norm_gradients,
    squared_gradients,
)

RNG = np.random.RandomState(0)
X_TINY = RNG.normal(size=(40, 3)).astype(np.float32)
Y_TINY = (X_TINY[:, 0] + X_TINY[:, 1] > 0).astype(int)


def tiny(penalty, **params):
    defaults = dict(
        module__hidden_sizes=(4,), max_epochs=2, lr=0.05, batch_size=8, random_state=0
    )
    return ContinualClassifier(penalty=penalty, **{**defaults, **params})


def params_of(clf):
    return [p for p in clf.module_.parameters()]


def stream_of(n_tasks):
    """Tiny tasks: the same inputs with permuted features."""
    perms = [np.roll(np.arange(3), k) for k in range(n_tasks)]
    X = np.concatenate([X_TINY[:, p] for p in perms])
    return X, np.tile(Y_TINY, n_tasks), np.repeat(np.arange(n_tasks), len(X_TINY))


def check_value_and_gradient(penalty, clf, expected):
    params = params_of(clf)
    value = penalty.loss(clf.net_)
    # float32 sums of up to 5 quadratics, 4 roundings per parameter entry each.
    operations = 4 * 5 * sum(p.numel() for p in params)
    want_value = expected(params).item()
    tol = tolerance(operations, want_value, torch.float32)
    assert value.item() == pytest.approx(want_value, rel=0, abs=tol)
    got = torch.autograd.grad(value, params)
    want = torch.autograd.grad(expected(params), params)
    for g, w in zip(got, want):
        tol = tolerance(operations, w, torch.float32)
        torch.testing.assert_close(g, w, rtol=0, atol=tol)


def fisher_of(clf, X, y):
    return list(squared_gradients(clf.module_, X, y).values())


def close_to_recomputed(mine, theirs, module, n_samples, combined=0):
    """A per-sample importance recomputed apart: each sample's gradient comes
    from a forward and a backward pass (twice the fan-ins; squared: twice the
    relative error), the mean adds ``n_samples``, combining tasks ``combined``
    more operations; float32."""
    operations = 4 * forward_operations(module) + n_samples + combined
    tol = tolerance(operations, theirs, torch.float32)
    torch.testing.assert_close(mine, theirs, rtol=0, atol=tol)


def test_separate_ewc_over_five_tasks_is_the_sum_of_five_quadratics():
    X, y, t = stream_of(6)
    clf = tiny(EWC(lam=3.0))
    fishers, anchors = [], []
    for task in range(5):
        rows = t == task
        clf.partial_fit(X[rows], y[rows], task_id=task, classes=[0, 1])
        fishers.append(fisher_of(clf, X[rows], y[rows]))
        anchors.append([p.detach().clone() for p in params_of(clf)])
        for mine, theirs in zip(clf.penalty_.fisher_.values(), fishers[-1]):
            close_to_recomputed(mine, theirs, clf.module_, rows.sum())
    clf.partial_fit(X[t == 5], y[t == 5], task_id=5)

    def explicit(params):
        return 1.5 * sum(
            (F * (p - a) ** 2).sum()
            for Fs, As in zip(fishers, anchors)
            for F, p, a in zip(Fs, params, As)
        )

    check_value_and_gradient(clf.penalty_, clf, explicit)
    assert len(clf.penalty_.precision_) == len(params_of(clf))  # one quadratic


def test_online_ewc_decays_the_fisher_and_keeps_one_anchor():
    X, y, t = stream_of(3)
    clf = tiny(EWC(lam=2.0, mode="online", decay=0.5))
    fishers = []
    for task in range(3):
        rows = t == task
        clf.partial_fit(X[rows], y[rows], task_id=task, classes=[0, 1])
        fishers.append(fisher_of(clf, X[rows], y[rows]))
        if task == 1:
            anchor = [p.detach().clone() for p in params_of(clf)]
    precision = [0.5 * f0 + f1 for f0, f1 in zip(*fishers[:2])]
    for mine, theirs in zip(clf.penalty_.precision_, precision):
        close_to_recomputed(mine, theirs, clf.module_, len(X_TINY), combined=2)

    def explicit(params):
        return sum(
            (F * (p - a) ** 2).sum() for F, p, a in zip(precision, params, anchor)
        )

    check_value_and_gradient(clf.penalty_, clf, explicit)


def test_ewc_true_fisher_and_chunked_tasks():
    X, y, t = stream_of(2)
    clf = tiny(EWC(fisher="true"), max_epochs=1)
    clf.partial_fit(X[:20], y[:20], task_id=0, classes=[0, 1])
    first = squared_gradients(clf.module_, X[:20], fisher="true")
    clf.partial_fit(X[20:40], y[20:40], task_id=0)
    second = squared_gradients(clf.module_, X[20:40], fisher="true")
    for name, value in clf.penalty_.fisher_.items():
        expected = (first[name] + second[name]) / 2
        close_to_recomputed(value, expected, clf.module_, 20, combined=2)


def test_ewc_n_samples_subsamples_the_fisher():
    X, y, t = stream_of(1)
    clf = tiny(EWC(n_samples=10), max_epochs=1).fit(X, y)
    full = squared_gradients(clf.module_, X, y)
    assert any(
        not torch.allclose(full[name], value)
        for name, value in clf.penalty_.fisher_.items()
    )


def test_mas_importance_accumulates_with_alpha():
    X, y, t = stream_of(3)
    clf = tiny(MAS(lam=1.5, alpha=0.25))
    importances = []
    for task in range(3):
        rows = t == task
        clf.partial_fit(X[rows], y[rows], task_id=task, classes=[0, 1])
        importances.append(list(output_norm_gradients(clf.module_, X[rows]).values()))
        if task == 1:
            anchor = [p.detach().clone() for p in params_of(clf)]
    expected = [0.25 * a + 0.75 * b for a, b in zip(*importances[:2])]
    for mine, theirs in zip(clf.penalty_.importance_, expected):
        close_to_recomputed(mine, theirs, clf.module_, len(X_TINY), combined=3)

    def explicit(params):
        return 0.75 * sum(
            (w * (p - a) ** 2).sum() for w, p, a in zip(expected, params, anchor)
        )

    check_value_and_gradient(clf.penalty_, clf, explicit)


class GradientRecorder(Callback):
    """Records, before each optimizer step, the parameters and their gradients."""

    def initialize(self):
        self.steps = []
        return self

    def on_grad_computed(self, net, named_parameters, **kwargs):
        self.steps.append(
            [(p.detach().clone(), p.grad.clone()) for _, p in named_parameters]
        )


@pytest.mark.parametrize("penalty_step", ["implicit", "explicit"])
def test_si_path_integral_uses_the_task_loss_gradient(penalty_step):
    X, y, t = stream_of(2)
    si = SI(lam=0.5, xi=0.1)
    clf = tiny(
        si, momentum=0.0, callbacks=[GradientRecorder()], penalty_step=penalty_step
    )
    clf.partial_fit(X[t == 0], y[t == 0], task_id=0, classes=[0, 1])
    recorder = dict(clf.net_.callbacks_)["GradientRecorder"]
    # Task 0 has no penalty term: omega = sum over steps of lr * g^2.
    omega = [
        sum(0.05 * g**2 for g in grads)
        for grads in zip(*[[g for _, g in step] for step in recorder.steps])
    ]
    # SI sums (theta_before - theta_after) * g: each float32 step's move rounds at
    # |theta|, so a step is off by eps * |theta| * |g| (3 roundings), per step.
    path_scale = max(
        (p.abs().max() * g.abs().max()).item()
        for step in recorder.steps
        for p, g in step
    )
    path_tol = tolerance(3 * len(recorder.steps), path_scale, torch.float32)
    for mine, theirs in zip(clf.penalty_.omega_, omega):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=path_tol)
    start = [v for v in clf.initial_snapshot_.values()]
    end = [p.detach().clone() for p in params_of(clf)]
    importance = [
        (w / ((e - s) ** 2 + 0.1)).clamp_min(0) for w, e, s in zip(omega, end, start)
    ]
    recorder.steps.clear()
    clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    # importance = omega / ((end - start)^2 + xi): omega's error over xi = 0.1.
    for mine, theirs in zip(clf.penalty_.importance_, importance):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=path_tol / 0.1)
    # Task 1: the step includes the pull lam * Omega * (theta - anchor), whose
    # gradient must not enter the path integral. Explicit: the recorded
    # gradient holds it; implicit: it is the proximal move after the step.
    omega = None
    for step in recorder.steps:
        if penalty_step == "explicit":
            terms = [
                0.05 * (g - 0.5 * w * (p - a)) * g
                for (p, g), w, a in zip(step, importance, end)
            ]
        else:
            terms = [
                (p - (p - 0.05 * g + 0.025 * w * a) / (1 + 0.025 * w)) * g
                for (p, g), w, a in zip(step, importance, end)
            ]
        omega = terms if omega is None else [o + d for o, d in zip(omega, terms)]
    # As in task 0, over this task's steps (the proximal move: 3 more roundings).
    path_scale = max(
        (p.abs().max() * g.abs().max()).item()
        for step in recorder.steps
        for p, g in step
    )
    path_tol = tolerance(6 * len(recorder.steps), path_scale, torch.float32)
    for mine, theirs in zip(clf.penalty_.omega_, omega):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=path_tol)

    def explicit(params):
        return 0.25 * sum(
            (w * (p - a) ** 2).sum() for w, p, a in zip(importance, params, end)
        )

    check_value_and_gradient(clf.penalty_, clf, explicit)


def test_shrink_and_perturb_after_each_step():
    X, y, _ = stream_of(1)
    none = tiny(None).fit(X, y)
    still = tiny(ShrinkAndPerturb(shrink=0.0, noise=0.0)).fit(X, y)
    # A per-step plug-in trains on the module's autograd, the other on the
    # batched kernels: equal up to the rounding of the training's operations.
    operations = training_operations(none.module_, 2 * len(X))
    np.testing.assert_allclose(
        none.predict_proba(X),
        still.predict_proba(X),
        rtol=0,
        atol=tolerance(operations, dtype=torch.float32),
    )
    zeroed = tiny(ShrinkAndPerturb(shrink=1.0, noise=0.0)).fit(X, y)
    assert all(torch.all(p == 0) for p in params_of(zeroed))
    fresh = tiny(ShrinkAndPerturb(shrink=1.0, noise=1.0)).fit(X, y)
    bound = 1 / np.sqrt(3)  # torch's default init of a Linear(3, 4) is U(-b, b)
    first = fresh.module_.layers[0].weight
    assert first.abs().max() <= bound and first.std() > bound / 3
    with pytest.raises(ValueError, match="shrink"):
        tiny(ShrinkAndPerturb(shrink=2.0)).fit(X, y)


def test_list_of_penalties_adds_and_is_reachable_by_index_and_name():
    X, y, t = stream_of(2)
    combo = [EWC(lam=2.0), L2Init(lam=0.5)]
    clf = tiny(combo).set_params(penalty__0__lam=4.0, penalty__l2init__lam=0.25)
    assert clf.get_params()["penalty__ewc__lam"] == 4.0
    assert clf.get_params()["penalty__1__lam"] == 0.25
    clf.fit(X, y, task_id=t)
    assert clf.penalty_[0].lam == 4.0
    total = clf.net_.quadratic_value()
    parts = [p.loss(clf.net_) for p in clf.penalty_]
    # The same float32 sums (4 roundings per parameter entry and penalty), added.
    operations = 4 * len(parts) * sum(p.numel() for p in params_of(clf)) + 1
    tol = tolerance(operations, total, torch.float32)
    assert total.item() == pytest.approx(sum(parts).item(), rel=0, abs=tol)


@pytest.mark.parametrize(
    "penalty",
    [
        EWC(lam=5.0),
        EWC(lam=5.0, mode="online", decay=0.9),
        SI(lam=0.5, xi=0.1),
        MAS(lam=0.5),
        [EWC(lam=1.0), L2Init(lam=0.1)],
        ShrinkAndPerturb(shrink=1e-3, noise=1e-3),
    ],
    ids=["ewc", "online-ewc", "si", "mas", "ewc+l2init", "shrink-perturb"],
)
def test_state_survives_pickle_and_joblib_and_training_continues(tmp_path, penalty):
    X, y, t = stream_of(3)
    clf = tiny(penalty).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    joblib.dump(clf, tmp_path / "clf.joblib")
    for restored in (
        pickle.loads(pickle.dumps(clf)),
        joblib.load(tmp_path / "clf.joblib"),
    ):
        restored.partial_fit(X[t == 2], y[t == 2], task_id=2)
        reference = pickle.loads(pickle.dumps(clf))
        reference.partial_fit(X[t == 2], y[t == 2], task_id=2)
        np.testing.assert_array_equal(
            restored.predict_proba(X), reference.predict_proba(X)
        )
    assert not hasattr(
        clf.penalty if not isinstance(clf.penalty, list) else clf.penalty[0],
        "initialize_",
    )


def test_state_is_reset_by_fit_and_clone_and_never_on_the_parameter():
    X, y, t = stream_of(2)
    ewc = EWC(lam=1.0)
    clf = tiny(ewc).fit(X, y, task_id=t)
    assert not hasattr(ewc, "precision_")
    assert clf.penalty_.precision_ is not None
    assert not hasattr(clone(clf), "penalty_")
    clf.fit(X[t == 0], y[t == 0])
    assert clf.penalty_.precision_ is None and clf.tasks_ == [0]
    moved = clf.penalty_.to("cpu")
    assert moved is clf.penalty_


def test_penalties_on_the_regressor():
    X, _, t = stream_of(2)
    y = X @ np.array([1.0, -1.0, 0.5])
    for penalty in (EWC(lam=1.0, fisher="true"), SI(lam=0.1, xi=0.1), MAS(lam=0.1)):
        reg = ContinualRegressor(penalty=penalty, max_epochs=2, random_state=0)
        reg.fit(X, y, task_id=t)
        assert np.isfinite(reg.predict(X)).all()
        assert reg.penalty_.loss(reg.net_).item() >= 0


@pytest.mark.parametrize(
    "penalty",
    [EWC(lam=30.0), SI(lam=1.0, xi=1.0), MAS(lam=0.05)],
    ids=["ewc", "si", "mas"],
)
def test_importance_penalties_forget_less_on_permuted_digits(penalty):
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "permuted", n_tasks=5, random_state=0
    )
    params = dict(lr=0.05, batch_size=10, max_epochs=3, random_state=0)
    params["module__hidden_sizes"] = (100, 100)

    def run(p):
        clf = ContinualClassifier(penalty=p, **params).fit(X, y, task_id=t)
        return accuracy_matrix(clf, X_test, y_test, t_test)

    naive, R = run(None), run(penalty)
    assert forgetting(R) < forgetting(naive) - 0.2
    assert np.diag(R).mean() > 0.8  # new tasks are still learned


def test_duplicate_penalty_names_are_numbered():
    clf = tiny([L2(lam=1.0), L2(lam=2.0), SI()])
    params = clf.get_params()
    assert params["penalty__l2-1__lam"] == 1.0 and params["penalty__l2-2__lam"] == 2.0
    clf.set_params(penalty__si=MAS())
    assert (
        isinstance(clf.penalty[2], MAS) and clf.get_params()["penalty__mas__lam"] == 1
    )
    with pytest.raises(ValueError, match="no penalty 'ewc'"):
        clf.set_params(penalty__ewc__lam=1.0)


@pytest.mark.parametrize(
    "penalty",
    [L2(lam=0.7), L2Init(lam=0.7), EWC(lam=3.0), SI(lam=0.5, xi=0.1), MAS(lam=2.0)],
    ids=["l2", "l2init", "ewc", "si", "mas"],
)
def test_fast_gradient_equals_autograd_of_the_loss(penalty):
    X, y, t = stream_of(3)
    clf = tiny(penalty).fit(X, y, task_id=t)
    params = params_of(clf)
    expected = torch.autograd.grad(clf.penalty_.loss(clf.net_), params)
    for p in params:
        p.grad = torch.ones_like(p)
    workspace = [torch.empty_like(p) for p in params]
    clf.penalty_.add_gradient(clf.net_, params, workspace)
    # Per entry lam * w * (theta - c) in float32: 4 roundings, then the add.
    for p, e in zip(params, expected):
        tol = tolerance(5, 1 + e.abs(), torch.float32)
        torch.testing.assert_close(p.grad, 1 + e, rtol=0, atol=tol)
