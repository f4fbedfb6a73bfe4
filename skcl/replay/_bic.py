import copy
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .._constraints import SIZE, Interval
from ..penalties._lwf import distillation
from ._base import Replay
from ._er import ER
from ._icarl import _is

# The held-out rows: a row's key, an int64 hash of its inputs on a grid of
# 2**-16, is below holdout_fraction of the key range. It is a function of
# the row alone: the same rows are held out at every epoch, in every batch.
_GRID = 2.0**16
_KEY_BITS = 24


def fit_bias_layer(logits, y, classes, *, epochs, lr):
    """Fit ``alpha, beta`` so that ``alpha * z + beta`` on ``classes`` minimises
    the cross-entropy of ``logits`` against ``y``.

    Full-batch gradient descent from ``(1, 0)``: ``epochs`` steps of size
    ``lr``. ``classes`` is a boolean mask of the outputs corrected.

    Returns
    -------
    Tensor of shape (2,)
        ``alpha`` and ``beta``.
    """
    params = torch.tensor([1.0, 0.0], dtype=logits.dtype, device=logits.device)
    params.requires_grad_(True)
    with torch.enable_grad():
        for _ in range(epochs):
            corrected = torch.where(classes, params[0] * logits + params[1], logits)
            (grad,) = torch.autograd.grad(F.cross_entropy(corrected, y), params)
            with torch.no_grad():
                params -= lr * grad
    return params.detach()


class BiC(ER):
    """Bias correction: replay, distillation and a bias layer on the new classes.

    Large scale incremental learning (Wu et al., CVPR 2019). Training is
    :class:`ER` (a batch of the memory with each step's) whose loss becomes
    ``(1 - lam) * CE + lam * KD``, ``lam = n_old / (n_old + n_task)`` with
    ``n_old`` the classes trained before the current task and ``n_task``
    the current task's classes (the paper's ``n / (n + m)`` when a task
    brings only new classes), and ``KD`` the distillation of
    :class:`~skcl.penalties.LwF` (temperature ``temperature``), over the
    old classes, towards the network as it was at the end of the previous
    task with that task's bias layer (:attr:`teacher_`); the plug-in's term
    is ``lam * (KD - CE)``. A fraction ``holdout_fraction`` of the incoming
    samples is held out of training and of the memory (each sample by a
    hash of its inputs, so the same ones at every epoch). After each chunk
    of a task that brings classes not trained before (the new classes), the
    bias layer ``alpha * z + beta`` on the new classes' logits is fitted on
    the held-out samples of every class seen, at most ``holdout_fraction *
    memory_size / n_seen`` per class (the balanced split), by
    :func:`fit_bias_layer` (``bias_epochs`` full-batch steps at
    ``bias_lr``), on the network's raw outputs. Prediction (:meth:`infer`)
    applies one layer, that of the task whose end the parameters are from
    (in the accuracy matrix, each column's), to that task's new classes'
    logits: the network trains on its raw outputs, which the distillation
    already pulls towards the earlier tasks' corrected ones, so an earlier
    layer applied again would correct twice.

    Applies to :class:`~skcl.ContinualClassifier` only (a TypeError for the
    regressor), to class-incremental streams: a task that brings no new
    class has no bias layer (its correction is the identity), so on
    domain-incremental streams it is ER with distillation: where every task
    has all the classes, ``lam`` is 1/2 from the second task on
    (``n_task = n_old``), the cross-entropy and the distillation of the
    previous network weighted equally. On a task-free stream (one task, fed
    in chunks) no task ends: it is ER on the samples not held out, without
    distillation or bias layer.
    With ``multi_head=True`` the layer, fitted over every class, is of
    little use: the masked outputs compare each task's classes only. Its
    hooks do not stack: in a stacked search its candidates train one by
    one.

    Parameters
    ----------
    memory_size : int, default=200
        The samples kept (per class and task with
        ``memory="class_balanced"``).
    memory : {"reservoir", "class_balanced"}, default="reservoir"
        How the memory is filled (see :class:`ER`).
    memory_batch_size : int, default=64
        The memory samples replayed at each step.
    temperature : float, default=2.0
        The distillation's softmax temperature.
    holdout_fraction : float, default=0.1
        The fraction of the samples held out for the bias layer, in (0, 0.5].
    bias_epochs : int, default=200
        Gradient steps of each bias layer's fit.
    bias_lr : float, default=0.1
        Their step size.

    Attributes
    ----------
    memory_ : ReservoirMemory or ClassBalancedMemory
        The memory (see :class:`ER`).
    teacher_ : torch.nn.Module
        The network at the end of the previous task.
    old_classes_ : Tensor
        A boolean mask of the classes trained before the current task.
    holdout_X_, holdout_y_ : Tensor or None
        The held-out samples kept for the bias layers, by class.
    bias_ : list of Tensor
        Per task, its layer's ``alpha`` and ``beta`` (``(1, 0)`` for a task
        without new classes).
    bias_classes_ : list of Tensor
        Per task, a boolean mask of its new classes.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import BiC
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(200, 4)), np.arange(200) % 4
    >>> clf = ContinualClassifier(replay=BiC(memory_size=40), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=(y >= 2).astype(int))
    >>> clf.replay_.bias_classes_[1].tolist()
    [False, False, True, True]
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **Replay._parameter_constraints,
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "holdout_fraction": [Interval(numbers.Real, 0, 0.5, closed="right")],
        "bias_epochs": [SIZE],
        "bias_lr": [Interval(numbers.Real, 0, None, closed="neither")],
    }
    # Not stacked: its term subtracts the task loss, which the stacked
    # backend differentiates apart from the terms.
    stackable_steps = candidate_steps = ()

    def __init__(
        self,
        *,
        memory_size=200,
        memory="reservoir",
        memory_batch_size=64,
        temperature=2.0,
        holdout_fraction=0.1,
        bias_epochs=200,
        bias_lr=0.1,
    ):
        super().__init__(
            memory_size=memory_size, memory=memory, memory_batch_size=memory_batch_size
        )
        self.temperature = temperature
        self.holdout_fraction = holdout_fraction
        self.bias_epochs = bias_epochs
        self.bias_lr = bias_lr

    def initialize(self, net):
        if not isinstance(net.criterion_, nn.CrossEntropyLoss):
            raise TypeError("BiC learns classes: use it with ContinualClassifier.")
        super().initialize(net)
        device = next(net.module_.parameters()).device
        self.teacher_ = copy.deepcopy(net.module_).eval().requires_grad_(False)
        self.old_classes_ = torch.zeros(
            len(net.classes), dtype=torch.bool, device=device
        )
        self._task_classes = self.old_classes_.clone()
        self._current_classes = self.old_classes_.clone()
        self.holdout_X_ = self.holdout_y_ = self._key = None
        self.bias_, self.bias_classes_ = [], []

    def begin_task(self, net):
        super().begin_task(net)
        self._task_classes = torch.zeros_like(self.old_classes_)
        self._current_classes = torch.zeros_like(self.old_classes_)

    def end_task(self, net):
        super().end_task(net)
        self.teacher_.load_state_dict(net.module_.state_dict())
        self.old_classes_ = self.old_classes_ | self._task_classes

    def _held_out(self, net, X):
        """Whether each row of ``X`` is held out (a function of the row alone)."""
        flat = X.flatten(1)
        if self._key is None:
            generator = getattr(net, "generator_", None)
            key = torch.randint(-(2**62), 2**62, flat.shape[1:], generator=generator)
            self._key = key.to(X.device)
        grid = torch.round(flat.double() * _GRID).long()
        hashed = (grid * self._key).sum(1) >> (63 - _KEY_BITS)
        return (hashed & (2**_KEY_BITS - 1)) < self.holdout_fraction * 2**_KEY_BITS

    def before_forward(self, net, step):
        kept = ~self._held_out(net, step.X)
        # A step with nothing else to train on (the stream's first) keeps them.
        if bool(kept.any()) or len(self.memory_):
            step.X, step.y = step.X[kept], step.y[kept]
            step.inputs, step.targets = step.X, step.y
        self._current_classes[step.y] = True
        self._task_classes = self._current_classes & ~self.old_classes_
        super().before_forward(net, step)

    def loss(self, net, step):
        n_old = int(self.old_classes_.sum())
        if not n_old:
            return None
        with torch.no_grad():
            teacher = self._corrected(self.teacher_(step.inputs), net.task_index_ - 1)
        old = self.old_classes_.nonzero()[:, 0]
        kd = distillation(
            step.logits.index_select(1, old),
            teacher.index_select(1, old),
            self.temperature,
        )
        # The current task's classes, new or not: a task of old classes only
        # (domain-incremental) still trains on its labels (lam 1/2, not 1).
        lam = n_old / (n_old + int(self._current_classes.sum()))
        return lam * (kd - step.loss)

    @torch.no_grad()
    def consolidate(self, net, X, y):
        held = self._held_out(net, X)
        self._keep_held_out(X[held], y[held])
        alpha_beta = torch.tensor([1.0, 0.0], dtype=X.dtype, device=X.device)
        new = self._task_classes
        if bool(new.any()) and bool(self.old_classes_.any()):
            module = net.module_
            training = module.training
            module.eval()
            try:
                logits = module(self.holdout_X_)
            finally:
                module.train(training)
            seen = (self.old_classes_ | new).nonzero()[:, 0]
            alpha_beta = fit_bias_layer(
                logits.index_select(1, seen),
                torch.searchsorted(seen, self.holdout_y_),
                new.index_select(0, seen),
                epochs=self.bias_epochs,
                lr=self.bias_lr,
            )
        if len(self.bias_) > net.task_index_:
            self.bias_.pop()
            self.bias_classes_.pop()
        self.bias_.append(alpha_beta)
        self.bias_classes_.append(new.clone())

    def _keep_held_out(self, X, y):
        """Add held-out rows; keep at most the balanced share of each class."""
        if self.holdout_X_ is not None:
            X, y = torch.cat([self.holdout_X_, X]), torch.cat([self.holdout_y_, y])
        classes = y.unique()
        share = max(1, int(self.holdout_fraction * self.memory_size / len(classes)))
        rows = torch.cat([(y == c).nonzero()[:share, 0] for c in classes.tolist()])
        self.holdout_X_, self.holdout_y_ = X[rows], y[rows]

    def _corrected(self, logits, task):
        """``logits`` with task ``task``'s bias layer (on its new classes) applied.

        Only that task's: the network trains on its raw outputs (the earlier
        layers, fitted to earlier networks, are in its distillation target
        already), so each layer corrects the network of its own task.
        """
        if not 0 <= task < len(self.bias_):
            return logits
        alpha, beta = self.bias_[task]
        return torch.where(self.bias_classes_[task], alpha * logits + beta, logits)

    def infer(self, net, X, outputs, task):
        return self._corrected(outputs, task)

    def check_state(self, net, X, y):
        """Also check the class masks, the bias layers and the held-out samples.

        The masks are boolean over ``net``'s classes; the layers, at most one
        per task, finite ``(alpha, beta)`` pairs with a mask; the held-out
        samples inputs like ``X`` with labels of ``net``'s classes.
        """
        super().check_state(net, X, y)
        n_classes = len(net.classes)
        masks = {
            "old_classes_": self.old_classes_,
            "_task_classes": self._task_classes,
            "_current_classes": self._current_classes,
        }
        masks.update(
            {f"bias_classes_[{i}]": m for i, m in enumerate(self.bias_classes_)}
        )
        for name, mask in masks.items():
            if not _is(mask, torch.bool, (n_classes,)):
                raise ValueError(
                    f"{name} should be a boolean mask of {n_classes} classes."
                )
        if (
            len(self.bias_) != len(self.bias_classes_)
            or len(self.bias_) > net.task_index_ + 1
        ):
            raise ValueError("bias_ should hold one layer per trained task.")
        if any(not _is(b, None, (2,)) for b in self.bias_):
            raise ValueError("bias_ should hold (alpha, beta) pairs.")
        X_held, y_held = self.holdout_X_, self.holdout_y_
        if X_held is None or y_held is None:
            if X_held is not y_held:
                raise ValueError("holdout_X_ and holdout_y_ should both be None.")
            return
        n = len(y_held)
        if not (
            _is(X_held, X.dtype, (n, *X.shape[1:]))
            and _is(y_held, torch.long, (n,))
            and bool(((y_held >= 0) & (y_held < n_classes)).all())
        ):
            raise ValueError(
                f"holdout_X_ and holdout_y_ should hold inputs like X and labels of "
                f"the {n_classes} classes."
            )
        key = self._key
        if key is not None and not _is(key, torch.long, (X.shape[1:].numel(),)):
            raise ValueError("_key should hold one int64 per input feature.")
