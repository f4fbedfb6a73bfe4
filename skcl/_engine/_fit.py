"""Fit continual estimators that differ only in per-candidate scalars, as one."""

import functools
import hashlib

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from .._hooks import Hooks
from .._params import fingerprint
from .._state import capture, interrupts_deferred, restore
from ._chunk import (
    _draws_random,
    chunk_generators,
    plugins_reason,
    plugins_state_reason,
    stacked_reason,
    train_chunk,
)
from ._network import _batched_plan
from ._optimizers import STACKED_OPTIMIZERS
from ._pipeline import is_continual_pipeline, pipeline_key, transform_streams
from ._random import run_each

# Estimator parameters that may differ within a group; every plug-in's
# hyper-parameters may too, since its task-level hooks run per candidate.
PER_CANDIDATE = (
    "lr",
    "lr_decay",
    "min_lr",
    "momentum",
    "random_state",
    # The stacked optimizers' scalars (flags such as nesterov stay shared).
    *(
        f"optimizer__{name}"
        for name in (
            "momentum",
            "dampening",
            "weight_decay",
            "betas",
            "eps",
            "alpha",
            "lr_decay",
            "initial_accumulator_value",
        )
    ),
)
# The stacked parameters, gradients, buffers, centres, precisions and
# workspace of a group: at most this many bytes (larger groups run in parts).
STACK_BYTES = 2**30
# What the stacked path runs instead of fit: a subclass must not change them.
_TRAINING_METHODS = (
    "fit",
    "partial_fit",
    "_fit",
    "_start_fit",
    "_train_task",
    "_train_task_unguarded",
    "_chunk_seed",
    "_open_chunk",
    "_keep_snapshot",
)
# ... nor, in the inner net, what a stack calls in place of train_chunk.
_NET_METHODS = (
    "train_chunk",
    "end_epoch",
    "set_step_sizes",
    "quadratic_forms",
    "get_loss",
)


def stacking_key(estimator):
    """Return ``(key, None)``, equal keys for estimators that can train stacked,
    or ``(None, reason)`` for an estimator that cannot."""
    from .._base import _ContinualEstimator

    if is_continual_pipeline(estimator):
        key, reason = stacking_key(estimator.steps[-1][1])
        return (None, reason) if key is None else (pipeline_key(estimator, key), None)
    if not isinstance(estimator, _ContinualEstimator):
        return None, f"{type(estimator).__name__} is not a continual estimator"
    for name in _TRAINING_METHODS:
        if not getattr(type(estimator), name).__module__.startswith("skcl."):
            return None, f"{type(estimator).__name__} overrides {name}"
    params = estimator.get_params(deep=False)
    if params["optimizer"] not in STACKED_OPTIMIZERS:
        name = getattr(params["optimizer"], "__name__", params["optimizer"])
        stacked = ", ".join(o.__name__ for o in STACKED_OPTIMIZERS)
        return None, f"its optimizer is {name}; {stacked} are stacked"
    plugins = estimator._plugin_list()
    reason = plugins_reason(plugins)
    if reason is not None:
        return None, reason
    key = {
        name: _module_digest(value)
        if isinstance(value, nn.Module)
        else fingerprint(value)
        for name, value in params.items()
        if name not in (*PER_CANDIDATE, "penalty")
    }
    key["plugins"] = fingerprint([type(p) for p in plugins if Hooks([p]).stepping()])
    return key, None


def _module_digest(module):
    """A module instance's digest: its layers' attributes, tensors and flags."""
    digest = hashlib.sha256()
    for layer in module.modules():
        attributes = sorted(
            (k, repr(v))
            for k, v in vars(layer).items()
            if not k.startswith("_") and k != "training"
        )
        digest.update(f"{type(layer).__qualname__}{attributes}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(repr([p.requires_grad for p in module.parameters()]).encode())
    return digest.hexdigest()


def differences(key, other):
    """Name the parameters in which two stacking keys differ."""
    return sorted(
        name for name in key.keys() | other.keys() if key.get(name) != other.get(name)
    )


def fit_together(estimators, X, y, task_id=None, *, partial=False, own_data=False):
    """Fit ``estimators`` on one stream, stacked when they can share a network.

    Estimators with equal :func:`stacking_key` train as one stacked network
    (in parts of at most ``STACK_BYTES``), each ending as its own ``fit``
    (``partial_fit`` with ``partial=True``) would leave it; otherwise, or
    when the network or optimizer turns out not to stack, each is fitted
    alone. An estimator whose training fails is left as it was before the
    failed chunk, as its own ``fit`` would leave it; an interrupt
    (KeyboardInterrupt) undoes the chunk of every estimator, then the whole
    call of those that had completed no chunk of it.

    With ``own_data``, ``X``, ``y`` and ``task_id`` are sequences with one
    stream per estimator: streams of the same tasks and shapes train as one
    stack, each candidate on its own data.

    Returns
    -------
    outcomes : list
        Per estimator, the fitted estimator or the exception its fit raised.
    reason : str or None
        Why they were fitted one by one, or None if they trained stacked.
    """
    data = (
        list(zip(X, y, task_id, strict=True))
        if own_data
        else [(X, y, task_id)] * len(estimators)
    )
    if all(is_continual_pipeline(e) for e in estimators):
        return _fit_pipelines(estimators, data, partial)
    reason = _keys_reason(estimators)
    if reason is None:
        saved = [_Saved(e) for e in estimators]
        try:
            reason, outcomes = _Group(estimators).fit(data, partial)
        except Exception as error:  # the stacked forward or a plug-in's state
            reason = f"their stacked training failed ({type(error).__name__}: {error})"
        except BaseException:
            with interrupts_deferred():
                for state in saved:
                    if not getattr(state.estimator, "tasks_", None):
                        state.restore()  # no chunk of the call completed
            raise
        if reason is None:
            return outcomes, None
        for state in saved:
            state.restore()
    return [
        _fit_alone(e, *own, partial) for e, own in zip(estimators, data, strict=True)
    ], reason


def _keys_reason(estimators):
    """Why ``estimators`` cannot train stacked, found from their parameters."""
    keys = [stacking_key(e) for e in estimators]
    reason = next((why for _, why in keys if why is not None), None)
    if reason is None:
        changed = next(
            (differences(keys[0][0], key) for key, _ in keys[1:] if key != keys[0][0]),
            None,
        )
        if changed:
            reason = f"the candidates differ in {', '.join(changed)}"
    return reason


def runtime_reason(estimators, X, y, task_id=None):
    """Why :func:`fit_together` would fit ``estimators`` one by one, or None.

    The reason that ``fit_together(estimators, X, y, task_id)`` would give,
    found as it finds it, from the parameters and then from the built
    networks (their modules, criteria, optimizers, plug-ins' state and
    random draws), but with no training: the networks are built on clones
    (unfitted, as ``fit`` starts them), the estimators are left untouched.
    A reason that only a stacked training step raises is not found.
    """
    estimators = [clone(e) for e in estimators]
    data = [(X, y, task_id)] * len(estimators)
    if all(is_continual_pipeline(e) for e in estimators):
        streams = transform_streams(estimators, data)
        fitting = [i for i, s in enumerate(streams) if not isinstance(s, Exception)]
        if not fitting:
            return None
        estimators = [estimators[i].steps[-1][1] for i in fitting]
        data = [streams[i] for i in fitting]
    reason = _keys_reason(estimators)
    if reason is None:
        try:
            reason, *_ = _Group(estimators).build(data, partial=False)
        except Exception as error:  # as fit_together reports it
            reason = f"their stacked training failed ({type(error).__name__}: {error})"
    return reason


def _fit_pipelines(pipelines, data, partial):
    """Fit pipelines ending in continual estimators: each one's transformers,
    then their final estimators together on the transformed streams."""
    if partial:
        error = TypeError("a Pipeline has no partial_fit")
        return [error] * len(pipelines), str(error)
    streams = transform_streams(pipelines, data)
    fitting = [i for i, s in enumerate(streams) if not isinstance(s, Exception)]
    outcomes = list(streams)
    if fitting:
        finals = [pipelines[i].steps[-1][1] for i in fitting]
        own = [streams[i] for i in fitting]
        shared = all(s is own[0] for s in own)
        fitted, reason = fit_together(
            finals,
            *(own[0] if shared else zip(*own, strict=True)),
            partial=False,
            own_data=not shared,
        )
        for i, outcome in zip(fitting, fitted, strict=True):
            outcomes[i] = (
                outcome if isinstance(outcome, BaseException) else pipelines[i]
            )
    else:
        reason = None
    return outcomes, reason


class _Saved:
    """An estimator as it was, to train it alone after a failed stacked attempt."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.fitted = hasattr(estimator, "net_")
        self.state = capture(estimator) if self.fitted else dict(vars(estimator))
        seeds = estimator.random_state
        self.seeds = (
            seeds.get_state() if isinstance(seeds, np.random.RandomState) else None
        )

    def restore(self):
        if self.fitted:
            restore(self.estimator, self.state)
        else:
            vars(self.estimator).clear()
            vars(self.estimator).update(self.state)
        if self.seeds is not None:
            self.estimator.random_state.set_state(self.seeds)


def _fit_alone(estimator, X, y, task_id, partial):
    if is_continual_pipeline(estimator):
        (outcome,), _ = _fit_pipelines([estimator], [(X, y, task_id)], partial)
        return outcome
    try:
        fit = estimator.partial_fit if partial else estimator.fit
        return fit(X, y, task_id=task_id)
    except Exception as error:
        return error


class _Group:
    """Estimators with one stacking key, fitted stacked, chunk after chunk."""

    def __init__(self, estimators):
        self.estimators = estimators

    def fit(self, data, partial):
        """Return ``(reason, outcomes)``: a reason not to stack, or the outcomes.

        ``data`` holds each estimator's ``(X, y, task_id)``.
        """
        reason, outcomes, chunks, fitted = self.build(data, partial)
        if reason is not None:
            return reason, None
        if not fitted:
            return None, outcomes
        position = {id(e): i for i, e in enumerate(self.estimators)}
        size = max(1, STACK_BYTES // _stacked_bytes(fitted[0]))
        for start in range(0, len(fitted), size):
            part = fitted[start : start + size]
            errors = dict.fromkeys(map(id, part))
            for i, (_, task) in enumerate(chunks[id(fitted[0])]):
                alive = [e for e in part if errors[id(e)] is None]
                if not alive:
                    break
                data = [chunks[id(e)][i][0] for e in alive]
                errors_now = _train_chunk(alive, data, task)
                for e, error in zip(alive, errors_now, strict=True):
                    errors[id(e)] = error
            for e in part:
                outcomes[position[id(e)]] = errors[id(e)] or e
        return None, outcomes

    def build(self, data, partial):
        """Start every estimator's fit and check that the networks stack.

        Returns ``(reason, outcomes, chunks, fitted)``: a reason not to
        stack or None, per estimator the error its start raised or None, the
        chunks of each started estimator (by ``id``), and those estimators.
        Nothing trains.
        """
        outcomes, chunks, streams = [], {}, {}
        for estimator, (X, y, task_id) in zip(self.estimators, data, strict=True):
            try:
                if id(X) not in streams:  # each stream validated and split once
                    streams[id(X)] = list(
                        estimator._start_fit(X, y, task_id, None, not partial)[2]
                    )
                else:
                    estimator._start_fit(X, y, task_id, None, not partial)
            except Exception as error:
                outcomes.append(error)
                continue
            outcomes.append(None)
            chunks[id(estimator)] = streams[id(X)]
        fitted = [
            e for e, o in zip(self.estimators, outcomes, strict=True) if o is None
        ]
        if not fitted:
            return None, outcomes, chunks, fitted
        layouts = {
            repr([(X.shape, y.shape, task) for (X, y, _), task in chunks[id(e)]])
            for e in fitted
        }
        if len(layouts) > 1:
            return "their streams differ in tasks or shapes", outcomes, chunks, fitted
        reason = _runtime_reason(fitted, chunks[id(fitted[0])][0][0][0])
        return reason, outcomes, chunks, fitted


def _train_chunk(estimators, data, task):
    """Train one chunk of ``task`` stacked; return each estimator's error or None.

    ``data`` holds each estimator's chunk ``(X, y, labels)``.

    A chunk is a transaction for every candidate: one that fails is put
    back as it was before the chunk, and so is every candidate when the
    stacked training itself raises (the caller then trains them alone) or is
    interrupted.
    """
    saved, grad = [capture(e) for e in estimators], torch.is_grad_enabled()
    try:
        outcomes = _train_chunk_unguarded(estimators, data, task)
    except BaseException:
        with interrupts_deferred():
            for estimator, state in zip(estimators, saved, strict=True):
                restore(estimator, state)
            torch.set_grad_enabled(grad)
        raise
    with interrupts_deferred():
        for estimator, state, outcome in zip(estimators, saved, outcomes, strict=True):
            if outcome is not None:
                restore(estimator, state)
    return outcomes


def _train_chunk_unguarded(estimators, data, task):
    seeds = [e._chunk_seed() for e in estimators]
    nets = [e.net_ for e in estimators]
    penalty_step = estimators[0].penalty_step
    with chunk_generators(nets, seeds, data[0][0], penalty_step) as generators:
        opened = run_each(
            generators,
            [
                functools.partial(_opened, estimator, labels, task)
                for estimator, (_, _, labels) in zip(estimators, data, strict=True)
            ],
        )
        outcomes = dict(zip(map(id, estimators), opened, strict=True))
        training = [i for i, o in enumerate(opened) if not isinstance(o, Exception)]
        if training:
            trained = _train_opened(
                *([v[i] for i in training] for v in (estimators, opened, data, seeds)),
                task,
            )
            for i, error in zip(training, trained, strict=True):
                outcomes[id(estimators[i])] = error
    return [outcomes[id(e)] for e in estimators]


def _opened(estimator, labels, task):
    """Open ``estimator``'s chunk: its settings, or the error opening raised."""
    try:
        return estimator._open_chunk(labels, task)
    except Exception as error:
        return error


def _train_opened(estimators, settings, data, seeds, task):
    nets = [e.net_ for e in estimators]
    generators = [net.generator_ for net in nets]
    alike = all(g is generators[0] for g in generators)
    own_data = any(X is not data[0][0] for X, _, _ in data)
    X = torch.stack([X for X, _, _ in data]) if own_data else data[0][0]
    y = torch.stack([y for _, y, _ in data]) if own_data else data[0][1]
    orders = [torch.Generator().manual_seed(s) for s in seeds[: 1 if alike else None]]
    errors = train_chunk(nets, X, y, settings, orders, own_data)
    # Each candidate consolidates from the state its training left.
    return run_each(
        generators,
        [
            functools.partial(_closed, estimator, error, own, task)
            for estimator, error, own in zip(estimators, errors, data, strict=True)
        ],
        check=False,
    )


def _closed(estimator, error, data, task):
    """Report the chunk's ``error`` or consolidate it; return the outcome."""
    try:
        with estimator._divergence_reported(task):
            if error is not None:
                raise error
        estimator.net_.consolidate(data[0], data[1], task)
        estimator._keep_snapshot()
    except Exception as caught:
        return caught
    return None


def _runtime_reason(estimators, X):
    """Why the built networks cannot train stacked, or None."""
    net_class = type(estimators[0].net_)
    for name in _NET_METHODS:
        if not getattr(net_class, name).__module__.startswith("skcl."):
            return f"its net class {net_class.__name__} overrides {name}"
    if len({repr(e.tasks_) for e in estimators}) > 1:
        return "the candidates have trained different tasks"
    reason = stacked_reason([e.net_ for e in estimators], X, estimators[0].penalty_step)
    if reason is not None:
        return reason
    module = estimators[0].module_
    seeds_differ = len({e._rng.get_state()[1].tobytes() for e in estimators}) > 1
    reason = plugins_state_reason([e.net_ for e in estimators], not seeds_differ)
    if reason is not None:
        return reason
    if (
        seeds_differ
        and _batched_plan(module, X.dim() - 1) is None
        and _draws_random(module, X)
    ):
        return (
            "differently seeded candidates draw their own random masks, which "
            "vmap cannot do for this module (MLPs and nn.Sequential can)"
        )
    return None


def _stacked_bytes(estimator):
    """Bytes of one candidate's share of a stack: about six parameter copies."""
    params = list(estimator.module_.parameters())
    return 6 * sum(p.numel() * p.element_size() for p in params) or 1
