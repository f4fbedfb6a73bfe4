import copy
import pickle

import numpy as np
import pytest
import torch
from _tolerance import forward_operations, tolerance
from sklearn.base import clone
from skorch.callbacks import Callback

from skcl import ContinualClassifier, ContinualRegressor
from skcl.modules import CNN
from skcl.penalties import L2, L2Init


def make_clf(**params):
    defaults = dict(max_epochs=2, lr=0.05, batch_size=16, random_state=0)
    return ContinualClassifier(**{**defaults, **params})


def parameters(est):
    return torch.cat([p.detach().flatten() for p in est.module_.parameters()])


def test_tasks_train_in_order_of_first_appearance(digits_stream):
    X, y, t = digits_stream
    names = np.array(["b", "a", "c"])[t]
    clf = make_clf().fit(X, y, task_id=names)
    assert clf.tasks_ == ["b", "a", "c"]
    assert len(clf.snapshots_) == 3
    assert clf.net_.history[:, "task"] == [0, 0, 1, 1, 2, 2]


def test_lr_decays_per_task_and_is_floored(digits_stream):
    X, y, t = digits_stream
    clf = make_clf(lr=0.1, lr_decay=0.5, min_lr=0.03).fit(X, y, task_id=t)
    expected = [0.1, 0.1, 0.05, 0.05, 0.03, 0.03]
    assert clf.net_.history[:, "lr"] == pytest.approx(expected)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.03)


def test_repeated_partial_fit_continues_one_task(digits_stream):
    X, y, _ = digits_stream
    clf = make_clf(max_epochs=1)
    clf.partial_fit(X[:150], y[:150], task_id=0, classes=np.arange(10))
    first = parameters(clf).clone()
    clf.partial_fit(X[150:300], y[150:300], task_id=0)
    clf.partial_fit(X[:150], y[:150])  # None continues the current task
    assert clf.tasks_ == [0]
    assert len(clf.snapshots_) == 1
    assert not torch.equal(first, parameters(clf))
    assert clf.net_.history[:, "lr"] == [0.05] * 3


def test_fit_equals_partial_fit_sequence(digits_stream):
    X, y, t = digits_stream
    fitted = make_clf(penalty=L2(lam=0.5), module__dropout=0.2).fit(X, y, task_id=t)
    stepwise = make_clf(penalty=L2(lam=0.5), module__dropout=0.2)
    for task in range(3):
        rows = t == task
        stepwise.partial_fit(X[rows], y[rows], task_id=task, classes=np.arange(10))
    np.testing.assert_array_equal(fitted.predict_proba(X), stepwise.predict_proba(X))


def test_same_seed_gives_identical_predictions_and_fit_resets(digits_stream):
    X, y, t = digits_stream
    a = make_clf(module__dropout=0.3).fit(X, y, task_id=t)
    b = make_clf(module__dropout=0.3).fit(X, y, task_id=t)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    a.fit(X, y, task_id=t)
    assert a.tasks_ == [0, 1, 2]
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = make_clf(module__dropout=0.3, random_state=1).fit(X, y, task_id=t)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_global_torch_rng_is_left_alone(digits_stream):
    X, y, t = digits_stream
    state = torch.get_rng_state()
    make_clf(max_epochs=1).fit(X, y, task_id=t)
    assert torch.equal(state, torch.get_rng_state())


def test_task_id_never_reaches_forward(digits_stream):
    X, y, t = digits_stream

    class Strict(torch.nn.Module):
        def __init__(self, input_dim, output_dim):
            super().__init__()
            self.linear = torch.nn.Linear(input_dim, output_dim)

        def forward(self, X, **kwargs):
            assert not kwargs
            return self.linear(X)

    clf = make_clf(module=Strict).fit(X, y, task_id=t)
    clf.partial_fit(X[:10], y[:10], task_id=3)
    assert clf.predict(X[:5]).shape == (5,)


def test_snapshots_match_tasks_and_use_snapshot_restores(digits_stream):
    X, y, t = digits_stream
    clf = make_clf().fit(X, y, task_id=t)
    current = clf.predict_proba(X)
    for index, snapshot in enumerate(clf.snapshots_):
        assert all(v.device.type == "cpu" for v in snapshot.values())
        with clf.use_snapshot(index):
            state = clf.module_.state_dict()
            assert all(torch.equal(state[k], snapshot[k]) for k in snapshot)
    np.testing.assert_array_equal(clf.predict_proba(X), current)
    with pytest.raises(RuntimeError), clf.use_snapshot("initial"):
        raise RuntimeError
    np.testing.assert_array_equal(clf.predict_proba(X), current)
    with pytest.raises(IndexError, match="index"), clf.use_snapshot(3):
        pass
    last = clf.snapshots_[-1]
    assert all(torch.equal(last[k], v) for k, v in clf.module_.state_dict().items())


def test_initial_snapshot_is_the_untrained_network(digits_stream):
    X, y, t = digits_stream
    clf = make_clf()
    clf.partial_fit(X[:1], y[:1], task_id=0, classes=np.arange(10))
    untrained = make_clf()
    untrained.partial_fit(X[:1], y[:1], task_id=0, classes=np.arange(10))
    with clf.use_snapshot("initial"), untrained.use_snapshot("initial"):
        np.testing.assert_array_equal(clf.predict_proba(X), untrained.predict_proba(X))


def test_keep_snapshots_off(digits_stream):
    X, y, t = digits_stream
    clf = make_clf(keep_snapshots=False).fit(X, y, task_id=t)
    assert clf.snapshots_ == [] and clf.initial_snapshot_ is None
    with pytest.raises(ValueError, match="keep_snapshots"), clf.use_snapshot(0):
        pass


@pytest.mark.parametrize("penalty_class", [L2, L2Init])
def test_penalty_value_and_gradient_equal_the_formula(penalty_class):
    X = np.random.RandomState(0).normal(size=(20, 3)).astype(np.float32)
    y = np.arange(20) % 2
    penalty = penalty_class(lam=0.7)
    clf = make_clf(penalty=penalty, module__hidden_sizes=(4,))
    clf.partial_fit(X, y, task_id=0, classes=[0, 1])
    initial = [v for k, v in clf.initial_snapshot_.items()]
    end_of_task_0 = [p.detach().clone() for p in clf.module_.parameters()]
    clf.partial_fit(X, y, task_id=1)
    anchor = initial if penalty_class is L2Init else end_of_task_0
    params = list(clf.module_.parameters())
    value = clf.penalty_.loss(clf.net_)
    expected = 0.35 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
    # Derived: float32 sums of squares over every parameter, of magnitude <= value.
    n = sum(p.numel() for p in params)
    bound = tolerance(n, expected, torch.float32)
    assert value.item() == pytest.approx(expected.item(), rel=0, abs=bound)
    grads = torch.autograd.grad(value, params)
    for g, p, a in zip(grads, params, anchor):
        torch.testing.assert_close(g, 0.7 * (p - a).detach())


@pytest.mark.parametrize("penalty_step", ["implicit", "explicit"])
@pytest.mark.parametrize("reset_optimizer", [True, False])
def test_training_equals_a_hand_written_pytorch_loop(
    digits_stream, reset_optimizer, penalty_step
):
    """Full-batch steps make the sample order irrelevant, so the whole
    trajectory must match a plain loop: SGD with momentum (re-created at each
    task or carried over), lr * decay**k floored at min_lr, L2 toward the
    previous task's end, added to the loss (explicit) or applied after the
    step as ``theta' = (theta_t + a c) / (1 + a)``, ``v' = v_t + (theta_t -
    theta') / lr`` with ``a = lr * lam`` (implicit)."""
    X, y, t = digits_stream
    lr, decay, min_lr, momentum, lam, epochs = 0.1, 0.5, 0.04, 0.8, 0.3, 4
    clf = make_clf(
        batch_size=int((t == 0).sum()),
        max_epochs=epochs,
        lr=lr,
        lr_decay=decay,
        min_lr=min_lr,
        momentum=momentum,
        reset_optimizer=reset_optimizer,
        penalty=L2(lam=lam),
        penalty_step=penalty_step,
    ).fit(X, y, task_id=t)
    module = copy.deepcopy(clf.module_)
    module.load_state_dict(clf.initial_snapshot_)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum)
    anchor = None
    for k in range(3):
        Xk, yk = torch.as_tensor(X[t == k]), torch.as_tensor(y[t == k])
        if reset_optimizer:
            optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum)
        task_lr = max(lr * decay**k, min_lr)
        optimizer.param_groups[0]["lr"] = task_lr
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(Xk), yk)
            if anchor is not None and penalty_step == "explicit":
                loss = loss + lam / 2 * sum(
                    ((p - a) ** 2).sum() for p, a in zip(module.parameters(), anchor)
                )
            loss.backward()
            optimizer.step()
            if anchor is not None and penalty_step == "implicit":
                a = task_lr * lam
                with torch.no_grad():
                    for p, c in zip(module.parameters(), anchor):
                        new = (p + a * c) / (1 + a)
                        optimizer.state[p]["momentum_buffer"] += (p - new) / task_lr
                        p.copy_(new)
        anchor = [p.detach().clone() for p in module.parameters()]
        torch.testing.assert_close(
            torch.cat([a.flatten() for a in anchor]),
            torch.cat([v.flatten() for v in clf.snapshots_[k].values()]),
        )


def test_l2_has_no_term_during_the_first_task(digits_stream):
    X, y, _ = digits_stream
    clf = make_clf(penalty=L2(lam=1.0))
    clf.partial_fit(X[:50], y[:50], task_id=0, classes=np.arange(10))
    assert clf.penalty_.loss(clf.net_) is None


@pytest.mark.parametrize(
    ("penalty", "anchor"), [(L2(lam=5.0), "previous"), (L2Init(lam=5.0), "initial")]
)
def test_penalties_move_parameters_less_than_none(digits_stream, penalty, anchor):
    X, y, t = digits_stream
    rows = t < 2

    def drift(p):
        clf = make_clf(penalty=p, max_epochs=3).fit(X[rows], y[rows], task_id=t[rows])
        ref = clf.initial_snapshot_ if anchor == "initial" else clf.snapshots_[0]
        last = clf.snapshots_[1]
        return sum(((last[k] - ref[k]) ** 2).sum() for k in ref).sqrt().item()

    assert drift(penalty) < 0.8 * drift(None)


def test_list_of_penalties_adds_terms_and_exposes_parameters(digits_stream):
    X, y, t = digits_stream
    clf = make_clf(penalty=[L2(lam=1.0), L2Init(lam=0.5)])
    params = clf.get_params()
    assert params["penalty__0__lam"] == 1.0 and params["penalty__1__lam"] == 0.5
    clf.set_params(penalty__1__lam=0.25)
    assert clf.penalty[1].lam == 0.25
    clf.fit(X, y, task_id=t)
    assert [type(p) for p in clf.penalty_] == [L2, L2Init]
    assert clf.penalty_[1] is not clf.penalty[1]
    total = clf.net_.get_loss(torch.zeros(1, 10), torch.tensor([0]), training=True)
    base = torch.nn.functional.cross_entropy(torch.zeros(1, 10), torch.tensor([0]))
    terms = sum(p.loss(clf.net_) for p in clf.penalty_)
    # Derived: the loss adds 3 float32 terms, each at most the total.
    assert total.item() == pytest.approx(
        (base + terms).item(), rel=0, abs=tolerance(3, total, torch.float32)
    )


def test_reset_optimizer_clears_momentum_at_each_task(digits_stream):
    X, y, t = digits_stream

    class Spy(Callback):
        def on_batch_begin(self, net, **kwargs):
            if not hasattr(self, "buffers"):
                self.buffers = []
            state = net.optimizer_.state
            self.buffers.append(bool(state))

    for reset in (True, False):
        clf = make_clf(reset_optimizer=reset, callbacks=[("spy", Spy())])
        clf.fit(X, y, task_id=t)
        spy = dict(clf.net_.callbacks_)["spy"]
        first_batch_of_task_1 = spy.buffers[2 * 19]
        assert first_batch_of_task_1 is (not reset)


def test_batch_level_callbacks_are_dispatched(digits_stream):
    X, y, t = digits_stream

    class Counter(Callback):
        def initialize(self):
            self.batches = 0
            return self

        def on_batch_end(self, net, **kwargs):
            self.batches += 1

    counter = Counter()
    clf = make_clf(callbacks=[counter]).fit(X[:100], y[:100])
    assert dict(clf.net_.callbacks_)["Counter"].batches == 2 * 7
    assert not hasattr(counter, "batches")  # the user's instance is not mutated


def test_class_errors_say_how_to_declare_the_labels(digits_stream):
    """Each refusal names the labels and the classes= that would have worked."""
    X, y, _ = digits_stream
    clf = make_clf(max_epochs=1)
    with pytest.raises(ValueError, match=r"this chunk's \[0, 1, 2\].*classes=") as e:
        clf.partial_fit(X[:3], [0, 1, 2], task_id=0)
    assert "ContinualClassifier(classes=[...])" in str(e.value)
    clf.partial_fit(X[:3], [0, 1, 2], task_id=0, classes=[0, 1, 2])
    declare = r"classes=\[\.\.\.\] on the first call to partial_fit"
    with pytest.raises(ValueError, match=r"labels \[7\] .*\[0, 1, 2\].*" + declare):
        clf.partial_fit(X[:3], [0, 7, 2], task_id=1)
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2, 3\] is not .*" + declare):
        clf.partial_fit(X[:3], [0, 1, 2], task_id=1, classes=[0, 1, 2, 3])
    fitted = make_clf(max_epochs=1).fit(X[:20], np.arange(20) % 2)
    with pytest.raises(
        ValueError, match=r"labels \[2\] .*ContinualClassifier\(classes="
    ):
        fitted.partial_fit(X[:3], [0, 1, 2])
    many = make_clf(max_epochs=1, classes=np.arange(30))
    with pytest.raises(ValueError, match=r"classes_ \[0, 1, .*, 19, \.\.\.\]: "):
        many.fit(X[:3], [0, 1, 30])


def test_classes_and_labels_are_checked_before_any_change(digits_stream):
    X, y, _ = digits_stream
    clf = make_clf()
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:20], y[:20], task_id=0)
    assert not hasattr(clf, "n_features_in_")
    clf.partial_fit(X[:20], y[:20], task_id=0, classes=np.arange(10))
    before = pickle.dumps(clf)
    with pytest.raises(ValueError, match=r"labels \[11\]"):
        clf.partial_fit(X[:3], [1, 11, 2], task_id=1)
    with pytest.raises(ValueError, match="already trained and closed"):
        clf.partial_fit(X[:3], y[:3], task_id=[1, 0, 1])
    with pytest.raises(ValueError, match="task_id"):
        clf.partial_fit(X[:3], y[:3], task_id=[1, 1])
    assert pickle.dumps(clf) == before


def test_string_labels_and_classes_parameter():
    X = np.random.RandomState(0).normal(size=(60, 2))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    clf = make_clf(classes=["neg", "pos", "zero"]).fit(X, y)
    assert clf.classes_.tolist() == ["neg", "pos", "zero"]
    assert set(clf.predict(X)) <= {"neg", "pos", "zero"}
    assert clf.predict_proba(X).shape == (60, 3)


def test_multi_head_restricts_predictions_to_the_task_classes(digits_stream):
    X, y, _ = digits_stream
    task = np.where(y < 5, "low", "high")
    clf = make_clf(multi_head=True).fit(X, y, task_id=task)
    assert clf.task_classes_ == {"low": [0, 1, 2, 3, 4], "high": [5, 6, 7, 8, 9]}
    predicted = clf.predict(X, task_id=task)
    assert np.all((predicted < 5) == (y < 5))
    proba = clf.predict_proba(X, task_id=task)
    assert np.all(proba[y < 5][:, 5:] == 0)
    assert clf.score(X, y, task_id=task) >= clf.score(X, y)
    with pytest.raises(ValueError, match="never trained"):
        clf.predict(X[:2], task_id="other")


def test_cnn_on_images(digits_stream):
    X, y, t = digits_stream
    images = X.reshape(-1, 1, 8, 8)
    clf = make_clf(module=CNN, module__channels=(4,), module__hidden_size=16)
    clf.fit(images, y, task_id=t)
    assert clf.input_shape_ == (1, 8, 8)
    assert clf.predict(images[:4]).shape == (4,)
    with pytest.raises(ValueError, match="shape"):
        clf.predict(images[:4].reshape(4, 1, 4, 16))


def test_module_params_are_routed_and_settable(digits_stream):
    X, y, t = digits_stream
    clf = make_clf(module__hidden_sizes=(7, 5))
    clf.set_params(module__dropout=0.4, optimizer__weight_decay=1e-4)
    assert clf.get_params()["module__dropout"] == 0.4
    clf.fit(X[:40], y[:40])
    dropouts = [m for m in clf.module_.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in dropouts] == [0.4, 0.4]
    assert clf.module_.layers[0].out_features == 7
    assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == 1e-4
    assert clone(clf).get_params()["module__dropout"] == 0.4


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"lr": -1.0}, "lr must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"penalty": "l2"}, "penalty must be"),
        ({"modul__dropout": 0.1}, "Unexpected parameters"),
    ],
)
def test_bad_parameters_are_rejected_at_fit(digits_stream, params, match):
    X, y, _ = digits_stream
    clf = make_clf(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        clf.fit(X[:20], y[:20])
    assert not hasattr(clf, "net_")


def test_divergence_raises_a_clear_error(digits_stream):
    X, y, _ = digits_stream
    clf = make_clf(lr=1e6)
    with pytest.raises(FloatingPointError, match="lower learning rate"):
        clf.fit(X * 1e3, y)


def test_instance_module_is_copied_so_fits_restart(digits_stream):
    X, y, _ = digits_stream
    module = torch.nn.Linear(64, 10)
    weight = module.weight.detach().clone()
    clf = make_clf(module=module).fit(X, y)
    first = clf.predict_proba(X)
    assert torch.equal(module.weight, weight)
    np.testing.assert_array_equal(clf.fit(X, y).predict_proba(X), first)


def test_pickle_and_skorch_persistence(tmp_path, digits_stream):
    X, y, t = digits_stream
    clf = make_clf(penalty=L2(lam=1.0)).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.partial_fit(X[t == 2], y[t == 2], task_id=2)
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))

    clf.net_.save_params(f_params=tmp_path / "params.pt")
    other = make_clf(random_state=5).fit(X[:20], y[:20])
    other.net_.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))


def test_regressor_one_and_two_targets():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    Y = np.stack([X @ [1.0, -1.0, 0.5], X[:, 0] * 2], axis=1)
    t = np.repeat([0, 1], 100)
    reg = ContinualRegressor(max_epochs=20, random_state=0).fit(X, Y, task_id=t)
    assert reg.predict(X).shape == (200, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.8
    one = ContinualRegressor(penalty=L2(lam=0.1), max_epochs=5, random_state=0)
    assert one.fit(X, Y[:, 0], task_id=t).predict(X).shape == (200,)
    with pytest.raises(ValueError, match="targets"):
        one.partial_fit(X, Y, task_id=1)


def test_pandas_and_float64_input(digits_stream):
    pd = pytest.importorskip("pandas")
    X, y, t = digits_stream
    frame = pd.DataFrame(X.astype(np.float64), columns=[f"px{i}" for i in range(64)])
    clf = make_clf().fit(frame, pd.Series(y), task_id=pd.Series(t))
    assert clf.feature_names_in_[0] == "px0"
    assert clf.score(frame, y) > 0.5


@pytest.mark.parametrize("images", [False, True], ids=["mlp", "cnn"])
def test_predictions_do_not_depend_on_the_other_samples(digits_stream, images):
    X, y, t = digits_stream
    params = {}
    if images:
        X = X.reshape(-1, 1, 8, 8)
        params = dict(module=CNN, module__channels=(4,), module__hidden_size=16)
    clf = make_clf(**params).fit(X[:300], y[:300])
    full = clf.predict_proba(X)
    rows = np.random.RandomState(1).permutation(len(X))[:301]
    # Derived: another batch size may pick another float32 kernel; each probability
    # (<= 1) rounds once per multiply-add of its layers' fan-ins.
    bound = tolerance(forward_operations(clf.module_), 1.0, torch.float32)
    np.testing.assert_allclose(clf.predict_proba(X[rows]), full[rows], 0, bound)
    np.testing.assert_allclose(clf.predict_proba(X[rows[:3]]), full[rows[:3]], 0, bound)
