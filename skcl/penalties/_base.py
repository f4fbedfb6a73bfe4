"""The penalty protocol."""

import copy

import torch
from sklearn.base import BaseEstimator


def _map_tensors(value, fn):
    """Apply ``fn`` to the tensors (and modules) in nested lists and dicts."""
    if isinstance(value, (torch.Tensor, torch.nn.Module)):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return copy.deepcopy(value).cpu()


class Penalty(BaseEstimator):
    """Base class of the penalties that anchor a network to earlier parameters.

    A penalty is a small cloneable object: its constructor only stores
    hyper-parameters (so ``penalty__lam`` works in ``set_params`` and in a grid),
    and its fitted state lives in attributes ending with an underscore. The
    estimator calls its lifecycle methods with the inner skorch net ``net``,
    whose ``module_`` is the network being trained and whose ``task_index_`` is
    the 0-based index of the current task:

    - :meth:`initialize` once, when training starts from scratch (``fit``, or
      the first ``partial_fit``), after the network is initialized;
    - :meth:`begin_task` when a task starts (the previous one, if any, has
      just ended: the network holds its final parameters);
    - :meth:`loss` at every training step; the value is added to the task loss;
    - :meth:`after_task_backward`, if a penalty defines it, after the task
      loss alone has been backpropagated at each step (the penalties' terms
      are then backpropagated separately), for penalties that need the task
      loss's gradient;
    - :meth:`after_step` after every optimizer step;
    - :meth:`consolidate` after each chunk of a task has been trained (every
      ``partial_fit`` call, one per task in ``fit``), with that chunk's inputs
      and encoded targets as tensors on the network's device.

    Every method does nothing by default; a penalty overrides what it needs.
    Tensors (and modules) held in attributes, also inside lists and dicts, are
    the penalty's state: :meth:`to` moves them, and they are pickled on the CPU
    so that a model trained on a GPU loads anywhere.

    Examples
    --------
    A penalty on the squared output-layer weights, for illustration:

    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import Penalty
    >>> class OutputWeightDecay(Penalty):
    ...     def __init__(self, *, lam=1e-3):
    ...         self.lam = lam
    ...     def loss(self, net):
    ...         weight = list(net.module_.parameters())[-2]
    ...         return self.lam * weight.square().sum()
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(penalty=OutputWeightDecay(), max_epochs=1)
    >>> clf.fit(X, y).set_params(penalty__lam=0.1).penalty
    OutputWeightDecay(lam=0.1)
    """

    def to(self, device):
        """Move the penalty's state to ``device``; return self."""
        moved = _map_tensors(vars(self), lambda t: t.to(device))
        vars(self).update(moved)
        return self

    def __getstate__(self):
        state = super().__getstate__()
        return _map_tensors(state, _to_cpu)

    def initialize(self, net) -> None:
        """Reset the fitted state at the start of training."""

    def begin_task(self, net) -> None:
        """Start task ``net.task_index_``."""

    def loss(self, net) -> torch.Tensor | None:
        """Return the penalty to add to the task loss, or None for none."""
        return None

    def after_task_backward(self, net) -> None:
        """Read the task loss's gradient (in ``.grad``) at each step."""

    def after_step(self, net) -> None:
        """Act after each optimizer step."""

    def consolidate(self, net, X: torch.Tensor, y: torch.Tensor) -> None:
        """Learn from a chunk ``(X, y)`` of the current task once it is trained."""
