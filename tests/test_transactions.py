"""One state, one transaction: every call is validated whole before any change,
every chunk is undone whole, and parameters changed between calls are
validated and applied, or refused."""

import copy
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from _equality import same
from skorch.callbacks import Callback
from test_interruption import make

import skcl
from skcl.callbacks import PrequentialScore
from skcl.metrics import accuracy_matrix
from skcl.penalties import EWC, L2


class Interrupter(Callback):
    """Raises KeyboardInterrupt at a training batch while ``armed``, with the
    module in eval mode if ``in_eval``."""

    armed = False

    def __init__(self, batch=3, in_eval=False):
        self.batch = batch
        self.in_eval = in_eval

    def initialize(self):
        self.count = 0
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        if not (training and type(self).armed):
            return
        self.count += 1
        if self.count == self.batch:
            if self.in_eval:
                net.module_.eval()
            raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def _disarmed():
    Interrupter.armed = False
    yield
    Interrupter.armed = False


def state_of(clf):
    """Everything training changes, with the callbacks and train/eval flags."""
    net = clf.net_
    return copy.deepcopy(
        (
            clf.tasks_,
            clf.snapshots_,
            clf.module_.state_dict(),
            [m.training for m in clf.module_.modules()],
            net.optimizer_.state_dict(),
            [vars(p) for p in net.plugins_],
            [(name, vars(cb)) for name, cb in net.callbacks_],
            list(net.history),
            clf._rng.get_state(),
            net.task_index_,
        )
    )


# F1: a rejected input changes nothing -------------------------------------------
def test_refit_with_out_of_range_inputs_keeps_the_previous_model(digits_stream):
    X, y, t = digits_stream
    clf = make().fit(X, y, task_id=t)
    before, predictions = state_of(clf), clf.predict_proba(X)
    with pytest.raises(ValueError, match="too large for the network's dtype"):
        clf.fit(X.astype("float64") * 1e300, y, task_id=t)
    assert clf.tasks_ == [0, 1, 2]
    assert same(state_of(clf), before)
    np.testing.assert_array_equal(clf.predict_proba(X), predictions)


def test_out_of_range_rows_of_a_later_task_refuse_the_whole_call(digits_stream):
    X, y, t = digits_stream
    clf = make().fit(X[t == 0], y[t == 0])
    before = state_of(clf)
    rows = t > 0
    X_bad = X[rows].astype("float64")
    X_bad[t[rows] == 2] *= 1e300
    with pytest.raises(ValueError, match="too large"):
        clf.partial_fit(X_bad, y[rows], task_id=t[rows])
    assert same(state_of(clf), before)


@pytest.mark.parametrize("fitted", [True, False], ids=["fitted", "unfitted"])
def test_a_fit_interrupted_in_its_first_task_leaves_the_previous_model(
    digits_stream, fitted
):
    X, y, t = digits_stream
    clf = make(callbacks=[Interrupter(batch=5)])
    if fitted:
        clf.fit(X[t == 0], y[t == 0])
        before = state_of(clf)
    Interrupter.armed = True
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y, task_id=t)
    if fitted:
        assert same(state_of(clf), before)
    else:
        assert not hasattr(clf, "net_") and not hasattr(clf, "tasks_")


def test_a_fit_interrupted_later_keeps_the_new_model_with_its_completed_tasks(
    digits_stream,
):
    X, y, t = digits_stream
    clf = make(callbacks=[Interrupter(batch=70)]).fit(X[t == 0], y[t == 0])
    Interrupter.armed = True  # 3 tasks of 300 samples: batch 70 is in task 1
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y, task_id=t)
    Interrupter.armed = False
    reference = make(callbacks=[Interrupter(batch=70)]).fit(
        X[t == 0], y[t == 0], task_id=0
    )
    assert clf.tasks_ == [0]
    assert same(clf.snapshots_, reference.snapshots_)


def test_random_interrupts_of_a_refit_never_leave_an_untrained_network(digits_stream):
    """SIGINT at random times during fit() of a fitted estimator: the previous
    model, or the new one with its completed tasks, never tasks_ == []."""
    X, y, t = digits_stream
    clf = make(penalty=EWC(lam=10.0), max_epochs=1).fit(X[t == 0], y[t == 0])
    previous = clf.predict_proba(X)
    start = time.perf_counter()
    make(penalty=EWC(lam=10.0), max_epochs=1).fit(X, y, task_id=t)
    duration = time.perf_counter() - start
    rng = np.random.RandomState(0)
    outcomes = {"previous": 0, "new": 0, "completed": 0}
    for _ in range(20):
        sent = threading.Event()

        def interrupt(sent=sent):
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()

        timer = threading.Timer(rng.uniform(0, duration), interrupt)
        try:
            try:  # a short delay can fire before start() returns
                timer.start()
                clf.fit(X, y, task_id=t)
            finally:
                sent.wait()
            time.sleep(0.05)  # a signal sent after fit returned lands here
        except KeyboardInterrupt:
            pass
        assert clf.tasks_ != []
        assert clf.module_.training or not any(
            m.training for m in clf.module_.modules()
        )
        if clf.tasks_ == [0] and np.array_equal(clf.predict_proba(X), previous):
            outcomes["previous"] += 1
        elif clf.tasks_ == [0, 1, 2]:
            outcomes["completed"] += 1
        else:
            outcomes["new"] += 1
        clf.fit(X[t == 0], y[t == 0])  # back to the first model
        np.testing.assert_array_equal(clf.predict_proba(X), previous)
    assert outcomes["previous"] + outcomes["new"] > 0, outcomes


# F3: an interrupted chunk leaves no callback state behind -------------------------
def test_an_interrupted_chunk_restores_callbacks_and_train_flags(digits_stream):
    X, y, t = digits_stream
    callbacks = [PrequentialScore(), Interrupter(batch=7, in_eval=True)]
    clf = make(callbacks=callbacks).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    before = state_of(clf)
    Interrupter.armed = True
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert same(state_of(clf), before)
    Interrupter.armed = False
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    reference = make(callbacks=callbacks).fit(X, y, task_id=t)
    scores = [
        dict(c.net_.callbacks_)["PrequentialScore"].scores_ for c in (clf, reference)
    ]
    assert scores[0] == scores[1]


# F4: parameters changed between calls ---------------------------------------------
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"batch_size": -5}, "batch_size must be an int >= 1"),
        ({"momentum": -1.0}, "momentum must be a float >= 0"),
        ({"max_epochs": 0}, "max_epochs must be an int >= 1"),
        ({"max_epochs": 2.5}, "max_epochs must be an int >= 1"),
        ({"lr": -1.0}, "lr must be a positive float"),
        ({"lr": "x"}, "lr must be a positive float"),
        ({"penalty_step": "x"}, "penalty_step must be"),
        ({"penalty": L2()}, r"\['penalty'\] changed"),
        ({"penalty__1": L2()}, r"\['penalty'\] changed"),
        ({"keep_snapshots": False}, r"\['keep_snapshots'\] changed"),
        ({"module__dropout": 0.5}, r"\['module__dropout'\] changed"),
        ({"optimizer": torch.optim.Adam}, r"\['optimizer'\] changed"),
        ({"callbacks": [PrequentialScore()]}, r"\['callbacks'\] changed"),
        ({"random_state": 1}, r"\['random_state'\] changed"),
    ],
)
def test_parameters_set_between_calls_are_validated_before_any_change(
    digits_stream, params, match
):
    X, y, t = digits_stream
    clf = make().fit(X[t == 0], y[t == 0])
    before = state_of(clf)
    clf.set_params(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert same(state_of(clf), before)


class BatchCounter(Callback):
    def initialize(self):
        self.count = 0
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        self.count += training


def test_parameters_set_between_calls_are_applied(digits_stream):
    X, y, t = digits_stream
    clf = make(max_epochs=1, callbacks=[BatchCounter()]).fit(X[t == 0], y[t == 0])
    counter = dict(clf.net_.callbacks_)["BatchCounter"]
    assert counter.count == 30  # 300 samples, batch 10
    clf.set_params(
        batch_size=50, max_epochs=2, momentum=0.5, lr=0.2, penalty__0__lam=3.0
    )
    clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert counter.count == 30 + 2 * 6
    group = clf.net_.optimizer_.param_groups[0]
    assert (group["momentum"], group["lr"]) == (0.5, 0.2)
    assert clf.penalty_[0].lam == 3.0
    assert clf.net_.history[-1, "lr"] == 0.2


# F7 -------------------------------------------------------------------------------
@pytest.mark.parametrize("task_id", [np.uint64(2**64 - 1), 2**63, -(2**63) - 1])
def test_task_ids_beyond_int64_are_refused(digits_stream, task_id):
    X, y, _ = digits_stream
    with pytest.raises(ValueError, match="int64"):
        make().partial_fit(X[:20], y[:20], task_id=task_id, classes=np.arange(10))
    array = np.full(20, 2**64 - 1, dtype=np.uint64)
    with pytest.raises(ValueError, match="int64"):
        make().fit(X[:20], y[:20], task_id=array)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_an_unavailable_device_is_refused_clearly(digits_stream):
    X, y, _ = digits_stream
    clf = make(device="cuda")
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        clf.fit(X[:20], y[:20])
    assert not hasattr(clf, "net_")
    with pytest.raises(ValueError, match="device must name a torch device"):
        make(device="gpu").fit(X[:20], y[:20])


def test_callbacks_that_are_not_callbacks_are_refused(digits_stream):
    X, y, _ = digits_stream
    for callbacks in ([1], "progress", [("name", 1)]):
        with pytest.raises(TypeError, match="callbacks must be None or a list"):
            make(callbacks=callbacks).fit(X[:20], y[:20])


def test_accuracy_matrix_refuses_the_task_ids_fit_refuses(digits_stream):
    X, y, t = digits_stream
    clf = make(max_epochs=1).fit(X, y, task_id=t)
    with pytest.raises(TypeError, match="task_id must hold ints or strings"):
        accuracy_matrix(clf, X, y, t.astype(float))


def test_training_and_saving_inside_use_snapshot_are_refused(digits_stream, tmp_path):
    X, y, t = digits_stream
    clf = make(max_epochs=1).fit(X[t == 0], y[t == 0])
    before = state_of(clf)
    with clf.use_snapshot("initial"):
        with pytest.raises(RuntimeError, match=r"inside `with estimator\.use_snapshot"):
            clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
        with pytest.raises(RuntimeError, match=r"inside `with estimator\.use_snapshot"):
            skcl.save(clf, tmp_path / "model.skcl")
    assert same(state_of(clf), before)
    clf.partial_fit(X[t == 1], y[t == 1], task_id=1)
    assert clf.tasks_ == [0, 1]
