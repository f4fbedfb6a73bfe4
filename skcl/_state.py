"""The training state: one mechanism that copies it, puts it back and checks it.

An *owner* is an object whose state is a set of attributes: the estimator and
every penalty or callback (their attributes that are not constructor
arguments), and the inner net (the names in its ``_training_state``). Its
state holds values, and owners in turn: modules (parameters, buffers and
train/eval flags), optimizers, histories, random generators, tensors, lists,
tuples and dicts of them. :func:`capture` copies that tree, :func:`restore`
puts a copy back in place (the owners, modules and optimizers stay the same
objects), and the file format stores it. Adding a piece of state is adding an
attribute to an owner.
"""

import copy
import inspect
import signal
import threading

import numpy as np
import torch
from skorch.history import History


class OwnerState(dict):
    """The state of an owner: attribute name to state, and its class."""

    def __init__(self, cls, items):
        super().__init__(items)
        self.cls = cls


class ModuleState:
    """A module's ``state_dict``, its non-persistent buffers (copies) and its
    train/eval flags."""

    def __init__(self, tensors, buffers, training):
        self.tensors, self.buffers, self.training = tensors, buffers, training


class OptimizerState:
    """A copy of an optimizer's ``state_dict``."""

    def __init__(self, state_dict):
        self.state_dict = state_dict


class RandomState:
    """The state of a ``numpy.random.RandomState``."""

    def __init__(self, state):
        self.state = state


class HistoryState(list):
    """The entries of a skorch ``History``."""


def state_names(owner):
    """Return the names of the attributes that hold ``owner``'s state."""
    declared = getattr(type(owner), "_training_state", None)
    if declared is not None:
        return [name for name in declared if hasattr(owner, name)]
    params = set(inspect.signature(type(owner).__init__).parameters)
    if hasattr(owner, "_extra_params"):  # the estimators' **kwargs parameters
        params.update(owner._extra_params())
    return [name for name in vars(owner) if name not in params]


def is_owner(value):
    return not isinstance(value, type) and (
        hasattr(type(value), "_training_state") or hasattr(value, "get_params")
    )


def capture(owner):
    """Return a copy of ``owner``'s training state (an :class:`OwnerState`)."""
    return _copy(owner, {})


def _copy(value, memo):
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, torch.nn.Module):
        tensors = {k: v.detach().clone() for k, v in value.state_dict().items()}
        buffers = {
            k: v.detach().clone()
            for k, v in value.named_buffers()
            if k not in tensors and v is not None
        }
        state = ModuleState(tensors, buffers, [m.training for m in value.modules()])
    elif isinstance(value, torch.optim.Optimizer):
        state = OptimizerState(copy.deepcopy(value.state_dict()))
    elif isinstance(value, History):
        state = HistoryState(copy.deepcopy(list(value)))
    elif isinstance(value, np.random.RandomState):
        state = RandomState(value.get_state())
    elif isinstance(value, torch.Tensor):
        state = value.detach().clone()
    elif isinstance(value, list):
        state = [_copy(v, memo) for v in value]
    elif isinstance(value, tuple):
        state = tuple(_copy(v, memo) for v in value)
    elif isinstance(value, dict):
        state = {k: _copy(v, memo) for k, v in value.items()}
    elif is_owner(value):
        state = OwnerState(type(value), {})
        memo[id(value)] = state  # before the attributes: owners may refer back
        state.update((n, _copy(getattr(value, n), memo)) for n in state_names(value))
    else:
        state = copy.deepcopy(value)
    memo[id(value)] = state
    return state


def restore(owner, state):
    """Put ``state`` (from :func:`capture`) back into ``owner``, in place."""
    _restore(owner, state, {})


def rebuild(state):
    """Return a new value from ``state`` (from :func:`capture`), not an owner's."""
    return _restore(None, state, {})


def _restore(current, state, done):
    if isinstance(state, OwnerState):
        if id(current) in done:
            return current
        if type(current) is not state.cls:
            raise TypeError(
                f"cannot restore the state of a {state.cls.__name__} into "
                f"{type(current).__name__}."
            )
        done[id(current)] = current
        for name in state_names(current):
            if name not in state:
                delattr(current, name)
        for name, value in state.items():
            setattr(current, name, _restore(getattr(current, name, None), value, done))
        return current
    if isinstance(state, ModuleState):
        current.load_state_dict(state.tensors)
        buffers = dict(current.named_buffers())
        with torch.no_grad():
            for name, tensor in state.buffers.items():
                buffers[name].copy_(tensor)
        for module, training in zip(current.modules(), state.training, strict=True):
            module.training = training
        return current
    if isinstance(state, OptimizerState):
        current.load_state_dict(copy.deepcopy(state.state_dict))
        return current
    if isinstance(state, HistoryState):
        history = current if isinstance(current, History) else History()
        history[:] = copy.deepcopy(list(state))
        return history
    if isinstance(state, RandomState):
        rng = current if isinstance(current, np.random.RandomState) else None
        rng = rng or np.random.RandomState()
        rng.set_state(state.state)
        return rng
    if isinstance(state, torch.Tensor):
        if id(state) not in done:  # a tensor shared in the state stays shared
            done[id(state)] = (state, state.clone())
        return done[id(state)][1]
    if isinstance(state, list):
        items = [_restore(_at(current, i), v, done) for i, v in enumerate(state)]
        if isinstance(current, list):
            current[:] = items  # keep the list: two owners may share it
            return current
        return items
    if isinstance(state, tuple):
        return tuple(_restore(_at(current, i), v, done) for i, v in enumerate(state))
    if isinstance(state, dict):
        return {k: _restore(_at(current, k), v, done) for k, v in state.items()}
    return copy.deepcopy(state)


def _at(container, key):
    try:
        return container[key]
    except (KeyError, IndexError, TypeError):
        return None


class interrupts_deferred:
    """Hold SIGINT (Ctrl-C) back until the block ends, so that it cannot leave
    a restoration half done; then deliver it as it would have been.

    Python runs a signal's handler in the main thread, whichever thread the
    kernel gave the signal to (a timer's, torch's) and whether it came from
    this process or another. In the main thread the block therefore replaces
    SIGINT's handler with one that only records the signal, puts the previous
    handler back at the end and, if a signal arrived, calls it then (the
    default one raises :class:`KeyboardInterrupt` after the block, from the
    block's exit). A block nested in another records for it.

    Elsewhere than in the main thread there is nothing to hold: a handler
    never runs there, so a SIGINT cannot raise inside the block. Where
    SIGINT's handler was not installed by Python, so that it cannot be put
    back, the block masks SIGINT in the calling thread instead.

    A signal that arrives before the block is entered raises there, before
    anything is restored; a caller that restores after an interrupt enters
    the block first thing.
    """

    def __enter__(self):
        self._previous, self._caught, self._masked = None, [], False
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is not None:
            signal.signal(signal.SIGINT, self._record)
            self._previous = previous
        elif hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            self._masked = True
        return self

    def _record(self, signum, frame):
        self._caught.append(frame)

    def __exit__(self, *exc_info):
        if self._masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            return False
        if self._previous is None:
            return False
        signal.signal(signal.SIGINT, self._previous)
        for frame in self._caught:
            _deliver(self._previous, frame)
        return False


def _deliver(handler, frame):
    """Give a held SIGINT to ``handler``, as the signal would have."""
    if callable(handler):
        handler(signal.SIGINT, frame)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)


def equal_values(a, b):
    """Whether two values hold the same data: tensors and arrays by value,
    owners by their state, containers item by item."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(equal_values(u, v) for u, v in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(equal_values(a[k], b[k]) for k in a)
        )
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if is_owner(a):
        return type(a) is type(b) and all(
            equal_values(getattr(a, n), getattr(b, n)) for n in state_names(a)
        )
    return type(a) is type(b) and a == b
