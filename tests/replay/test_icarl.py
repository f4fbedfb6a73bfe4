import copy
import pickle

import numpy as np
import pytest
import torch
from _equality import same
from _tolerance import forward_operations, tolerance
from skorch.callbacks import Callback
from torch import nn

import skcl
from skcl import ContinualClassifier, ContinualRegressor
from skcl.datasets import load_digits_stream
from skcl.metrics import accuracy_matrix, forgetting
from skcl.replay import BiC, ICaRL
from skcl.replay._icarl import feature_extractor, herding

# iCaRL and BiC: the behaviours every memory strategy keeps (test_strategies.py
# for the others); BiC's own are in test_bic.py.
STRATEGIES = {
    "icarl": lambda: ICaRL(memory_size=40),
    "bic": lambda: BiC(memory_size=40, memory_batch_size=10),
}


def make(replay=None, **params):
    defaults = dict(
        module__hidden_sizes=(16,), batch_size=20, max_epochs=2, lr=0.05,
        random_state=0, classes=np.arange(10),
    )  # fmt: skip
    return ContinualClassifier(replay=replay, **{**defaults, **params})


def state(plugin):
    """The plug-in's fitted state, its memory object opened."""
    return {
        k: vars(v) if hasattr(type(v), "_training_state") else v
        for k, v in vars(plugin).items()
        if k.endswith("_") or k.startswith("_")
    }


@pytest.fixture(scope="module")
def class_split():
    """Digits in 5 tasks of 2 classes (0-1, 2-3, ...)."""
    return load_digits_stream("split", n_tasks=5, random_state=0)


def test_herding_order_matches_a_hand_written_loop():
    features = torch.tensor(
        [[0.0, 0.0], [4.0, 1.0], [1.0, 3.0], [2.0, 2.0], [5.0, 5.0], [1.0, 0.0]],
        dtype=torch.float64,
    )
    mean = features.mean(0).numpy()
    chosen, total = [], np.zeros(2)
    for k in range(1, 6):
        costs = [
            np.inf if i in chosen else np.linalg.norm(mean - (total + f) / k)
            for i, f in enumerate(features.numpy())
        ]
        chosen.append(int(np.argmin(costs)))
        total += features[chosen[-1]].numpy()
    assert herding(features, 5).tolist() == chosen
    assert herding(features, 9).tolist()[:5] == chosen  # at most every row


def test_memory_shared_equally_by_the_classes_seen(class_split):
    X, _, y, _, t, _ = class_split
    clf = make(ICaRL(memory_size=40), max_epochs=1)
    counts = []
    for k in range(5):
        clf.partial_fit(X[t == k], y[t == k], task_id=k)
        counts.append(clf.replay_.memory_y_.bincount(minlength=10).tolist())
    assert counts[0] == [20, 20] + [0] * 8
    assert counts[1] == [10] * 4 + [0] * 6
    assert counts[4] == [4] * 10
    # Trimming keeps each class's first exemplars in herding order.
    before = make(ICaRL(memory_size=40), max_epochs=1)
    before.partial_fit(X[t == 0], y[t == 0], task_id=0)
    trimmed = clf.replay_.memory_X_[clf.replay_.memory_y_ == 0]
    kept = before.replay_.memory_X_[before.replay_.memory_y_ == 0][:4]
    assert torch.equal(trimmed, kept)


def test_exemplars_are_the_herding_choice_and_means_their_features(class_split):
    X, _, y, _, t, _ = class_split
    clf = make(ICaRL(memory_size=40), max_epochs=1)
    clf.partial_fit(X[t == 0], y[t == 0], task_id=0)
    replay, module = clf.replay_, clf.module_.eval()
    features = feature_extractor(module)
    with torch.no_grad():
        for c in (0, 1):
            rows = torch.as_tensor(X[(t == 0) & (y == c)])
            order = herding(features(rows), 20)
            assert torch.equal(replay.memory_X_[replay.memory_y_ == c], rows[order])
            mean = features(rows[order]).mean(0)
            atol = tolerance(forward_operations(module) * 20, mean, torch.float32)
            torch.testing.assert_close(
                replay.class_means_[0][c], mean, rtol=0, atol=atol
            )
    assert replay.mean_classes_[0].tolist() == [True, True] + [False] * 8


def test_prediction_is_the_nearest_mean_of_exemplars(class_split):
    X, X_test, y, _, t, _ = class_split
    clf = make(ICaRL(memory_size=40), max_epochs=1)
    clf.fit(X[t < 3], y[t < 3], task_id=t[t < 3])
    replay, module = clf.replay_, clf.module_.eval()
    with torch.no_grad():
        f = feature_extractor(module)(torch.as_tensor(X_test)).double().numpy()
    means = replay.class_means_[-1].double().numpy()
    distances = ((f[:, None, :] - means[None]) ** 2).sum(-1)
    distances[:, ~replay.mean_classes_[-1].numpy()] = np.inf
    np.testing.assert_array_equal(clf.predict(X_test), distances.argmin(1))
    assert set(clf.predict(X_test)) <= set(range(6))  # no unseen class
    proba = clf.predict_proba(X_test)
    # float32 softmax: a rounding per output, then the sum's.
    atol = tolerance(2 * proba.shape[1], dtype=torch.float32)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=0, atol=atol)
    # Each snapshot predicts with the means of its own task's end.
    with clf.use_snapshot(0):
        assert set(clf.predict(X_test)) <= {0, 1}
    with clf.use_snapshot("initial"), torch.no_grad():
        logits = module(torch.as_tensor(X_test)).argmax(1).numpy()
        np.testing.assert_array_equal(clf.predict(X_test), logits)


def test_refusals():
    X, y = np.random.RandomState(0).normal(size=(40, 4)), np.arange(40) % 4
    with pytest.raises(TypeError, match="ContinualClassifier"):
        ContinualRegressor(replay=ICaRL()).fit(X, y.astype(float))
    with pytest.raises(TypeError, match="ContinualClassifier"):
        ContinualRegressor(replay=BiC()).fit(X, y.astype(float))
    with pytest.raises(TypeError, match=r"MLP and nn\.Sequential"):
        ContinualClassifier(replay=ICaRL(), module=nn.Linear(4, 4)).fit(X, y)
    with pytest.raises(ValueError, match="multi_head"):
        make(ICaRL(), multi_head=True).fit(X, y, task_id=y // 2)
    with pytest.raises(ValueError, match="raise memory_size"):
        make(ICaRL(memory_size=3)).fit(X, y)
    with pytest.raises(ValueError, match="memory_batch_size"):
        make(ICaRL(memory_batch_size=0)).fit(X, y)
    with pytest.raises(ValueError, match="holdout_fraction"):
        make(BiC(holdout_fraction=0.7)).fit(X, y)


def test_nn_sequential_features_are_all_layers_but_the_last(class_split):
    X, _, y, _, t, _ = class_split
    module = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    clf = ContinualClassifier(
        replay=ICaRL(memory_size=20), module=module, max_epochs=1, classes=range(10)
    )
    clf.fit(X[t == 0], y[t == 0])
    net = clf.module_
    assert clf.replay_.class_means_[0].shape == (10, 8)
    assert feature_extractor(net)(torch.zeros(1, 64)).shape == (1, 8)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_fit_equals_partial_fit_sequence(class_split, name):
    X, _, y, _, t, _ = class_split
    fitted = make(STRATEGIES[name]()).fit(X[t < 3], y[t < 3], task_id=t[t < 3])
    partial = make(STRATEGIES[name]())
    for k in range(3):
        partial.partial_fit(X[t == k], y[t == k], task_id=k)
    assert same(fitted.snapshots_, partial.snapshots_)
    assert same(state(fitted.replay_), state(partial.replay_))


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_state_survives_save_load_and_pickle_bitwise(class_split, tmp_path, name):
    X, X_test, y, _, t, _ = class_split
    clf = make(STRATEGIES[name]()).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    skcl.save(clf, tmp_path / "clf.skcl")
    for copy_ in (skcl.load(tmp_path / "clf.skcl"), pickle.loads(pickle.dumps(clf))):
        assert same(state(clf.replay_), state(copy_.replay_))
        np.testing.assert_array_equal(
            clf.predict_proba(X_test), copy_.predict_proba(X_test)
        )
    copy_.partial_fit(X[t == 2], y[t == 2], task_id=2)
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert same(state(clf.replay_), state(copy_.replay_))


class _FailInTask1(Callback):
    def on_epoch_end(self, net, **kwargs):
        if net.task_index_ == 1 and len(net.history) == 3:
            raise RuntimeError("failing in the second epoch of task 1")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_failed_chunk_rolls_the_state_back_bitwise(class_split, name):
    X, X_test, y, _, t, _ = class_split
    clf = make(STRATEGIES[name](), callbacks=[_FailInTask1()])
    clf.fit(X[t == 0], y[t == 0], task_id=t[t == 0])
    before = copy.deepcopy(clf)
    with pytest.raises(RuntimeError, match="failing"):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert same(state(clf.replay_), state(before.replay_))
    np.testing.assert_array_equal(
        clf.predict_proba(X_test), before.predict_proba(X_test)
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_forget_less_than_naive(class_split, name):
    X, X_test, y, y_test, t, t_test = class_split
    params = dict(
        lr=0.1, batch_size=10, max_epochs=3, momentum=0.0,
        module__hidden_sizes=(100, 100),
    )  # fmt: skip
    naive = make(**params).fit(X, y, task_id=t)
    replay = {"icarl": ICaRL(memory_size=200), "bic": BiC(memory_size=200)}[name]
    clf = make(replay, **params).fit(X, y, task_id=t)
    R0 = accuracy_matrix(naive, X_test, y_test, t_test)
    R = accuracy_matrix(clf, X_test, y_test, t_test)
    assert forgetting(R) < forgetting(R0) - 0.3, (forgetting(R), forgetting(R0))
    assert R[-1].mean() > R0[-1].mean() + 0.2
