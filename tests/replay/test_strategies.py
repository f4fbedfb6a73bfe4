import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tolerance import forward_operations, tolerance, training_operations
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

import skcl
from skcl import ContinualClassifier, ContinualRegressor, Step
from skcl.metrics import accuracy_matrix, forgetting
from skcl.penalties import EWC, LwF
from skcl.replay import AGEM, DERPP, ER

STRATEGIES = {
    "er": lambda: ER(memory_size=50),
    "er-balanced": lambda: ER(memory_size=2, memory="class_balanced"),
    "agem": lambda: AGEM(memory_size=2),
    "agem-episodic": lambda: AGEM(memory_size=6, memory="episodic"),
    "derpp": lambda: DERPP(memory_size=50, alpha=0.3, beta=0.5),
}


def make(replay=None, **params):
    defaults = dict(
        module__hidden_sizes=(16,), batch_size=20, max_epochs=2, lr=0.05,
        random_state=0,
    )  # fmt: skip
    return ContinualClassifier(replay=replay, **{**defaults, **params})


def memory_tensors(clf):
    memory = clf.replay_.memory_
    return {n: getattr(memory, n) for n in memory._fields}


def assert_same_memory(a, b):
    for name, tensor in memory_tensors(a).items():
        other = memory_tensors(b)[name]
        assert (tensor is None) == (other is None), name
        if tensor is not None:
            assert torch.equal(tensor, other), name


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_fit_equals_partial_fit_sequence(digits_stream, name):
    X, y, t = digits_stream
    fitted = make(STRATEGIES[name]()).fit(X, y, task_id=t)
    partial = make(STRATEGIES[name]())
    for k in range(3):
        partial.partial_fit(X[t == k], y[t == k], task_id=k, classes=np.arange(10))
    for a, b in zip(fitted.snapshots_, partial.snapshots_, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert_same_memory(fitted, partial)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_random_state_seeds_the_memory(digits_stream, name):
    X, y, t = digits_stream
    a, b = (make(STRATEGIES[name]()).fit(X, y, task_id=t) for _ in range(2))
    assert_same_memory(a, b)
    c = make(STRATEGIES[name](), random_state=1).fit(X, y, task_id=t)
    assert not torch.equal(a.replay_.memory_.X, c.replay_.memory_.X)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_memory_survives_save_load_and_pickle_bitwise(digits_stream, tmp_path, name):
    X, y, t = digits_stream
    clf = make(STRATEGIES[name]()).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    skcl.save(clf, tmp_path / "clf.skcl")
    for copy_ in (skcl.load(tmp_path / "clf.skcl"), pickle.loads(pickle.dumps(clf))):
        assert_same_memory(clf, copy_)
        copy_.partial_fit(X[t == 2], y[t == 2], task_id=2)
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert_same_memory(clf, copy_)
    np.testing.assert_array_equal(clf.predict_proba(X), copy_.predict_proba(X))


class _FailInTask1(Callback):
    def on_epoch_end(self, net, **kwargs):
        if net.task_index_ == 1 and len(net.history) == 3:
            raise RuntimeError("failing in the second epoch of task 1")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_failed_chunk_rolls_the_memory_back_bitwise(digits_stream, name):
    """The memory changes during the chunk; the error undoes all of it."""
    X, y, t = digits_stream
    clf = make(STRATEGIES[name](), callbacks=[_FailInTask1()])
    clf.fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    before = copy.deepcopy(clf)
    with pytest.raises(RuntimeError, match="failing"):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert_same_memory(clf, before)
    assert clf.tasks_ == [0] and clf.replay_.memory_ is not before.replay_.memory_


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_forget_less_than_naive(name):
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "permuted", n_tasks=4, random_state=0
    )
    params = dict(
        lr=0.05, batch_size=10, max_epochs=3, random_state=0, momentum=0.8,
        module__hidden_sizes=(100, 100),
    )  # fmt: skip
    naive = ContinualClassifier(**params).fit(X, y, task_id=t)
    replay = {**{k: v() for k, v in STRATEGIES.items()}, "er": ER(memory_size=200)}
    clf = ContinualClassifier(replay=replay[name], **params).fit(X, y, task_id=t)
    R0 = accuracy_matrix(naive, X_test, y_test, t_test)
    R = accuracy_matrix(clf, X_test, y_test, t_test)
    assert forgetting(R) < forgetting(R0) - 0.05, (forgetting(R), forgetting(R0))
    assert np.diag(R).mean() > 0.8


def test_lwf_forgets_less_than_naive():
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "permuted", n_tasks=4, random_state=0
    )
    params = dict(lr=0.05, batch_size=10, max_epochs=3, random_state=0, momentum=0.8)
    naive = ContinualClassifier(**params).fit(X, y, task_id=t)
    clf = ContinualClassifier(penalty=LwF(lam=1.0), **params).fit(X, y, task_id=t)
    R0 = accuracy_matrix(naive, X_test, y_test, t_test)
    R = accuracy_matrix(clf, X_test, y_test, t_test)
    assert forgetting(R) < forgetting(R0) - 0.05, (forgetting(R), forgetting(R0))


def trained_after_task_0(replay, digits_stream, **params):
    X, y, t = digits_stream
    clf = make(replay, **params).fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    clf.net_.end_task()
    clf.net_.task_index_ += 1
    return clf, torch.as_tensor(X[t == 1][:20]), torch.as_tensor(y[t == 1][:20])


def test_agem_projection_equals_the_formula(digits_stream):
    clf, Xb, yb = trained_after_task_0(
        AGEM(memory_size=2, memory_batch_size=64), digits_stream
    )
    net, module = clf.net_, clf.module_
    memory = clf.replay_.memory_
    rows = memory.filled()
    assert len(rows) == 20  # 2 per class of task 0: the reference batch is all
    params = list(module.parameters())
    g = torch.autograd.grad(F.cross_entropy(module(Xb), yb), params)
    ref = torch.autograd.grad(
        F.cross_entropy(module(memory.X[rows]), memory.y[rows]), params
    )
    flat_g, flat_ref = (
        torch.cat([a.ravel() for a in g]),
        torch.cat([a.ravel() for a in ref]),
    )
    dot = flat_g @ flat_ref
    for grads in (g, [-a for a in g]):  # one conflicts with g_ref, one does not
        for p, a in zip(params, grads, strict=True):
            p.grad = a.clone()
        step = Step(Xb, yb, None)
        clf.replay_.after_backward(net, step)
        projected = torch.cat([p.grad.ravel() for p in params])
        flat = torch.cat([a.ravel() for a in grads])
        d = flat @ flat_ref
        expected = flat - d / (flat_ref @ flat_ref) * flat_ref if d < 0 else flat
        c = abs(d / (flat_ref @ flat_ref)) if d < 0 else 0.0
        # The coefficient: two float32 dots of 1210 entries (gamma_n each),
        # then 2 roundings an entry.
        atol = tolerance(
            2 * flat.numel() + 2, flat.abs() + c * flat_ref.abs(), torch.float32
        )
        torch.testing.assert_close(projected, expected, rtol=0, atol=atol)
        # float32 dot of 1210 entries after the projection's 2 roundings an entry
        # (Higham: gamma_n * sum |terms|); an unprojected conflict is -0.09.
        terms = (flat.abs() + c * flat_ref.abs()) @ flat_ref.abs()
        slack = tolerance(flat.numel() + 2, terms, torch.float32)
        assert projected @ flat_ref >= -slack
    assert dot != 0 and clf.replay_.n_projected_ == 1


def test_derpp_loss_equals_the_formula(digits_stream):
    clf, Xb, yb = trained_after_task_0(
        DERPP(memory_size=500, alpha=0.3, beta=0.7, memory_batch_size=500),
        digits_stream,
    )
    memory, module = clf.replay_.memory_, clf.module_
    rows = memory.filled()  # everything: both memory batches hold every row
    assert memory.n_seen == 600 and len(rows) == 500
    step = Step(Xb, yb, None)
    term = clf.replay_.loss(clf.net_, step)
    out = module(memory.X[rows])
    expected = 0.3 * ((out - memory.logits[rows]) ** 2).mean() + 0.7 * F.cross_entropy(
        out, memory.y[rows]
    )
    # float32: each output a forward pass, then means over 500 x 10 squares
    # and 500 cross-entropies (a log-sum-exp of 10 each).
    operations = forward_operations(module) + out.numel() + 11 * len(rows)
    atol = tolerance(
        operations, torch.stack([out.abs().max(), expected]), torch.float32
    )
    torch.testing.assert_close(term, expected, rtol=0, atol=atol)


def test_derpp_stores_the_logits_of_the_step(digits_stream):
    X, y, t = digits_stream
    clf = make(DERPP(memory_size=1000), max_epochs=1, lr=1e-9, batch_size=300)
    clf.fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    memory = clf.replay_.memory_
    with torch.no_grad():
        logits = clf.module_(memory.X[:300])
    # The first batch's logits, before any step: one float32 forward pass each
    # (training's kernels or the module's), 64 + 16 fan-ins.
    atol = tolerance(forward_operations(clf.module_), logits, torch.float32)
    torch.testing.assert_close(memory.logits[:300], logits, atol=atol, rtol=0)


def test_lwf_loss_equals_the_formula(digits_stream):
    X, y, t = digits_stream
    clf = make(None, penalty=LwF(lam=0.4, temperature=3.0))
    clf.fit(X[(t == 0) & (y < 5)], y[(t == 0) & (y < 5)], task_id=0)
    lwf = clf.penalty_
    lwf.consolidate(clf.net_, None, torch.arange(5))
    teacher = copy.deepcopy(clf.module_)
    clf.net_.end_task()
    assert lwf.old_classes_.tolist() == [0, 1, 2, 3, 4]
    with torch.no_grad():
        for p in clf.module_.parameters():
            p.add_(0.1 * torch.randn_like(p))
    Xb = torch.as_tensor(X[:30])
    step = Step(Xb, torch.as_tensor(y[:30]), None)
    step.logits = clf.module_(Xb)
    z, z_old = step.logits[:, :5], teacher(Xb)[:, :5]
    p_old = F.softmax(z_old / 3, 1)
    kl = (p_old * (F.log_softmax(z_old / 3, 1) - F.log_softmax(z / 3, 1))).sum(1)
    # float32: the teacher's forward pass, a log-softmax of 5 and a sum of 5
    # per row, the mean of 30 rows; scaled by lam * T^2 = 3.6.
    operations = forward_operations(clf.module_) + 15 + 30
    magnitude = 3.6 * torch.stack([z.abs().max(), z_old.abs().max()]).max()
    atol = tolerance(operations, magnitude, torch.float32)
    torch.testing.assert_close(
        lwf.loss(clf.net_, step), 0.4 * 9 * kl.mean(), rtol=0, atol=atol
    )


def test_er_trains_on_the_batch_and_the_memory_like_a_hand_written_loop(
    digits_stream,
):
    """Full-batch steps and a memory that keeps (and replays) everything make
    the run deterministic: each step trains on the batch followed by every
    sample offered before, with one mean loss, then stores the batch."""
    X, y, t = digits_stream
    lr, epochs = 0.1, 2
    clf = make(
        ER(memory_size=5000, memory_batch_size=5000),
        batch_size=300, max_epochs=epochs, lr=lr, momentum=0.0,
    ).fit(X, y, task_id=t)  # fmt: skip
    module = copy.deepcopy(clf.module_)
    module.load_state_dict(clf.initial_snapshot_)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    memory_X, memory_y, samples = [], [], 0
    for k in range(3):
        Xk, yk = torch.as_tensor(X[t == k]), torch.as_tensor(y[t == k])
        for _ in range(epochs):
            inputs, targets = torch.cat([Xk, *memory_X]), torch.cat([yk, *memory_y])
            optimizer.zero_grad()
            F.cross_entropy(module(inputs), targets).backward()
            optimizer.step()
            memory_X.append(Xk)
            memory_y.append(yk)
            samples += len(inputs)
        expected = torch.cat([p.detach().ravel() for p in module.parameters()])
        got = torch.cat([v.ravel() for v in clf.snapshots_[k].values()])
        # float32 rounding of the training so far (other kernels, same steps).
        ops = training_operations(module, samples)
        atol = tolerance(ops, expected, torch.float32)
        torch.testing.assert_close(got, expected, rtol=0, atol=atol)


def test_agem_only_refers_to_earlier_tasks_like_a_hand_written_loop(digits_stream):
    X, y, t = digits_stream
    lr, epochs = 0.1, 2
    clf = make(
        AGEM(memory_size=5000, memory="reservoir", memory_batch_size=5000),
        batch_size=300, max_epochs=epochs, lr=lr, momentum=0.0,
    ).fit(X, y, task_id=t)  # fmt: skip
    module = copy.deepcopy(clf.module_)
    module.load_state_dict(clf.initial_snapshot_)
    params = list(module.parameters())
    optimizer = torch.optim.SGD(params, lr=lr)
    earlier_X, earlier_y, projected, samples = [], [], 0, 0
    for k in range(3):
        Xk, yk = torch.as_tensor(X[t == k]), torch.as_tensor(y[t == k])
        for _ in range(epochs):
            optimizer.zero_grad()
            F.cross_entropy(module(Xk), yk).backward()
            samples += len(Xk)
            if earlier_X:
                Xm, ym = torch.cat(earlier_X), torch.cat(earlier_y)
                samples += len(Xm)
                ref = torch.autograd.grad(F.cross_entropy(module(Xm), ym), params)
                g = torch.cat([p.grad.ravel() for p in params])
                r = torch.cat([a.ravel() for a in ref])
                if g @ r < 0:
                    projected += 1
                    for p, a in zip(params, ref, strict=True):
                        p.grad -= (g @ r) / (r @ r) * a
            optimizer.step()
        earlier_X += [Xk] * epochs
        earlier_y += [yk] * epochs
        expected = torch.cat([p.detach().ravel() for p in params])
        got = torch.cat([v.ravel() for v in clf.snapshots_[k].values()])
        # float32 rounding of the training so far (other kernels, same steps).
        ops = training_operations(module, samples)
        atol = tolerance(ops, expected, torch.float32)
        torch.testing.assert_close(got, expected, rtol=0, atol=atol)
    assert clf.replay_.n_projected_ == projected


def test_episodic_agem_keeps_samples_of_each_task_whatever_their_labels(digits_stream):
    X, y, t = digits_stream
    clf = make(AGEM(memory_size=7, memory="episodic")).fit(X, y, task_id=t)
    memory = clf.replay_.memory_
    rows = memory.filled()
    tasks = memory.tasks[rows].numpy()
    assert np.bincount(tasks).tolist() == [7, 7, 7]
    for k in range(3):
        kept = memory.X[rows][tasks == k].numpy()
        # Each kept row is one of its task's samples, with its label.
        match = (kept[:, None, :] == X[t == k][None]).all(axis=2)
        assert match.any(axis=1).all()
        labels = memory.y[rows][tasks == k].numpy()
        assert (y[t == k][match.argmax(axis=1)] == labels).all()


@pytest.mark.parametrize("replay", [ER(), AGEM(memory="reservoir"), DERPP()])
def test_replay_trains_a_regressor(replay):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    y = X @ [1.0, -2.0, 0.5] + np.repeat([0.0, 3.0], 60)
    reg = ContinualRegressor(replay=replay, max_epochs=2, random_state=0)
    reg.fit(X, y, task_id=np.repeat([0, 1], 60))
    assert len(reg.replay_.memory_) > 0 and np.isfinite(reg.predict(X)).all()


def test_regressor_refuses_what_needs_classes():
    X, y = np.zeros((10, 2), dtype=np.float32), np.zeros(10)
    with pytest.raises(ValueError, match="class_balanced"):
        ContinualRegressor(replay=AGEM()).fit(X, y)
    with pytest.raises(TypeError, match="ContinualClassifier"):
        ContinualRegressor(penalty=LwF()).fit(X, y)


def test_replay_parameters_are_validated_before_any_state_changes():
    X, y = np.zeros((10, 2), dtype=np.float32), np.arange(10) % 2
    for bad, match in [
        (ER(memory_size=0), "memory_size"),
        (ER(memory="fifo"), "memory must be"),
        (AGEM(memory_batch_size=0), "memory_batch_size"),
        (DERPP(alpha=-1.0), "alpha"),
    ]:
        clf = ContinualClassifier(replay=bad)
        with pytest.raises(ValueError, match=match):
            clf.fit(X, y)
        assert not hasattr(clf, "net_")
    with pytest.raises(TypeError, match="replay must be"):
        ContinualClassifier(replay=EWC()).fit(X, y)
    with pytest.raises(TypeError, match="Replay strategies go in replay="):
        ContinualClassifier(penalty=ER()).fit(X, y)


def test_memory_size_is_frozen_other_parameters_are_not(digits_stream):
    X, y, t = digits_stream
    clf = make(ER(memory_size=30)).fit(X[t == 0], y[t == 0], task_id=0)
    clf.set_params(replay__memory_batch_size=8)
    clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert clf.replay_.memory_batch_size == 8
    clf.set_params(replay__memory_size=60)
    with pytest.raises(ValueError, match="replay"):
        clf.partial_fit(X[t == 2], y[t == 2], task_id=2)


def test_memory_size_in_a_grid_search(digits_stream):
    X, y, _ = digits_stream
    search = GridSearchCV(
        make(ER(), max_epochs=1), {"replay__memory_size": [10, 40]}, cv=2
    ).fit(X[:300], y[:300])
    assert search.best_params_["replay__memory_size"] in (10, 40)
    assert search.best_estimator_.replay_.memory_.capacity in (10, 40)
    assert clone(search.estimator).replay.memory_size == 200


def test_ewc_and_er_compose(digits_stream):
    X, y, t = digits_stream
    clf = make(ER(memory_size=40), penalty=EWC(lam=10.0)).fit(X, y, task_id=t)
    assert [type(p).__name__ for p in clf.net_.plugins_] == ["EWC", "ER"]
    assert clf.penalty_.precision_ is not None and len(clf.replay_.memory_) == 40


def test_multi_head_replay_masks_each_row_with_its_own_task(digits_stream):
    from skcl.datasets import load_digits_stream

    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "split", n_tasks=5, random_state=0
    )
    clf = ContinualClassifier(
        replay=ER(memory_size=100), multi_head=True, max_epochs=1, random_state=0
    ).fit(X, y, task_id=t)
    memory = clf.replay_.memory_
    rows = memory.filled()
    for row in rows.tolist():
        task = int(memory.tasks[row])
        allowed = clf.task_classes_[clf.tasks_[task]]
        assert memory.masks[row].nonzero()[:, 0].tolist() == allowed
        assert int(memory.y[row]) in allowed
