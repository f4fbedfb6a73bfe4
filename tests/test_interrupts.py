"""A second Ctrl-C, from any thread or process, cannot leave a rollback half
done: it is held until the estimator is restored, then raised."""

import os
import signal
import subprocess
import threading
import time

import pytest
from _equality import same
from skorch.callbacks import Callback
from test_interruption import make
from test_transactions import state_of

import skcl._state
from skcl._state import interrupts_deferred


class FailAt(Callback):
    """Raises ``error`` at the third training batch while ``armed``."""

    armed = False

    def __init__(self, error=KeyboardInterrupt):
        self.error = error

    def initialize(self):
        self.count = 0
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and type(self).armed:
            self.count += 1
            if self.count == 3:
                raise self.error


@pytest.fixture(autouse=True)
def _disarmed():
    FailAt.armed = False
    yield
    FailAt.armed = False
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def from_a_thread():
    timer = threading.Timer(0.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    timer.join()


def from_a_process():
    subprocess.run(["kill", "-INT", str(os.getpid())], check=True)


@pytest.fixture
def bystander():
    """A thread alive meanwhile, as torch's or a timer's: the kernel may give a
    process's SIGINT to it rather than to the main thread."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    yield
    done.set()
    thread.join()


def wait_for_handlers():
    """Time for the signal's handler to run in the main thread (it runs
    between bytecodes, so sleep in slices)."""
    for _ in range(20):
        time.sleep(0.005)


@pytest.fixture
def signal_during_restore(monkeypatch):
    """Make the rollback send a SIGINT with ``send`` half-way through: after it
    has put back the network, before the optimizer and the rest."""

    def arm(send):
        real, sent = skcl._state._restore, []

        def restore(current, state, done):
            result = real(current, state, done)
            if isinstance(state, skcl._state.ModuleState) and not sent:
                sent.append(True)
                send()
                wait_for_handlers()
            return result

        monkeypatch.setattr(skcl._state, "_restore", restore)
        return sent

    return arm


@pytest.mark.parametrize("send", [from_a_thread, from_a_process])
@pytest.mark.parametrize("first", [KeyboardInterrupt, RuntimeError])
def test_a_second_sigint_during_the_rollback_is_raised_after_it(
    digits_stream, signal_during_restore, bystander, send, first
):
    X, y, t = digits_stream
    clf = make(callbacks=[FailAt(first)]).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    before = state_of(clf)
    sent = signal_during_restore(send)
    FailAt.armed = True
    with pytest.raises(KeyboardInterrupt) as caught:
        clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert sent
    if first is RuntimeError:  # the held SIGINT was raised over the failure
        assert isinstance(caught.value.__context__, RuntimeError)
    assert same(state_of(clf), before)
    FailAt.armed = False
    clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    assert clf.tasks_ == [0, 1, 2]


def test_a_held_sigint_goes_to_the_handler_that_was_installed(
    digits_stream, signal_during_restore, bystander
):
    X, y, t = digits_stream
    clf = make(callbacks=[FailAt()]).fit(X[t < 2], y[t < 2], task_id=t[t < 2])
    before = state_of(clf)
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(state_of(clf)))
    try:
        signal_during_restore(from_a_thread)
        FailAt.armed = True
        with pytest.raises(KeyboardInterrupt):  # the callback's, not the signal's
            clf.partial_fit(X[t == 2], y[t == 2], task_id=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(received) == 1
    assert same(received[0], before)  # it ran once the estimator was restored
    assert same(state_of(clf), before)


def test_nested_blocks_hold_for_the_outer_one():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            with interrupts_deferred():
                from_a_thread()
                wait_for_handlers()
            reached.append(signal.getsignal(signal.SIGINT))
            wait_for_handlers()
    assert reached and reached[0] is not signal.default_int_handler


def test_outside_the_main_thread_the_block_changes_nothing():
    errors = []

    def run():
        try:
            with interrupts_deferred():
                assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        except BaseException as error:  # pragma: no cover
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []
