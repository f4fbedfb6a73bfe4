import math
import numbers

import torch
from sklearn.base import clone

from .._constraints import SIZE, STRENGTH, Interval
from .._engine._random import drawing_globally
from .._engine._settings import ChunkSettings
from .._plugin import Plugin
from ._base import Replay
from ._greedy import GreedyMemory


class GDumb(Replay):
    """GDumb: a class-balanced memory, and a network trained on it alone.

    Each chunk of the stream is offered to a class-balanced greedy memory
    (:class:`GreedyMemory`), sample by sample in order; then the network is
    re-initialized (``reset_parameters`` of each of its layers, drawn from
    the estimator's randomness) and trained from scratch on the memory
    alone, through the estimator's own training engine: ``epochs`` passes
    in batches of ``batch_size``, SGD with ``momentum``, a warm-up pass at
    ``lr / 10``, then cosine annealing with warm restarts from ``lr`` to
    ``min_lr`` over periods of 1, 2, 4... passes (Prabhu et al., "GDumb: A
    Simple Approach that Questions Our Progress in Continual Learning",
    ECCV 2020; the authors' and Mammoth's schedule). Predictions come from
    that network. The authors' crop augmentation (MNIST, CIFAR) is an
    ``augment`` plug-in such as :class:`skcl.datasets.RandomCropFlip`; not
    implemented from their code: cutmix (their gradient clipping is
    skorch's ``GradientNormClipping`` callback, which also runs during the
    retraining).

    The estimator's own training on each chunk still runs first (its
    ``max_epochs``, ``lr``...), and its result is then discarded: use
    ``max_epochs=1``. The retraining uses the estimator's optimizer class
    (its other hyper-parameters, such as weight decay, too), a fresh one;
    the penalties take no part in it, only ``augment``; its passes are
    recorded in the history (``train_loss``) after the chunk's. With
    ``partial_fit``, the network is retrained after every call.

    Classifier only (:class:`~skcl.ContinualClassifier`). With
    ``multi_head=True`` the network is retrained on all outputs and
    predictions are restricted to each task's outputs as usual. It applies
    to task-free streams: the memory does not need task boundaries.

    Parameters
    ----------
    memory_size : int, default=500
        The samples kept.
    epochs : int, default=128
        Passes over the memory of each retraining.
    lr : float, default=0.05
        The largest learning rate of the schedule.
    min_lr : float, default=5e-4
        The smallest learning rate of the schedule.
    momentum : float, default=0.9
        The optimizer's momentum during the retraining (if it has one).
    batch_size : int, default=16
        Samples per step of the retraining.
    augment : Plugin or None, default=None
        A plug-in whose per-step hooks run during the retraining, a fresh
        clone each time: data augmentation such as
        :class:`skcl.datasets.RandomCropFlip`.

    Attributes
    ----------
    memory_ : GreedyMemory
        The memory (see :class:`ER` for a row's bytes).

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import GDumb
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 4
    >>> clf = ContinualClassifier(replay=GDumb(memory_size=20, epochs=4))
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> np.bincount(clf.replay_.memory_.y.numpy()).tolist()  # balanced
    [5, 5, 5, 5]
    """

    _frozen_params = ("memory_size",)
    _parameter_constraints: dict = {  # noqa: RUF012
        "memory_size": [SIZE],
        "epochs": [SIZE],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "min_lr": [STRENGTH],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_size": [SIZE],
        "augment": [Plugin, None],
    }

    def __init__(
        self,
        *,
        memory_size=500,
        epochs=128,
        lr=0.05,
        min_lr=5e-4,
        momentum=0.9,
        batch_size=16,
        augment=None,
    ):
        self.memory_size = memory_size
        self.epochs = epochs
        self.lr = lr
        self.min_lr = min_lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.augment = augment

    def _memory_spec(self, net):
        if not isinstance(net.criterion_, torch.nn.CrossEntropyLoss):
            raise TypeError(
                "GDumb balances classes in its memory: use it with ContinualClassifier."
            )
        return GreedyMemory, {
            "capacity": self.memory_size,
            "n_classes": len(net.classes),
        }

    def memory_bytes(self, row_bytes, n_classes):
        """Return the bytes of the ``memory_size`` rows."""
        fields = ("X", "y", "tasks", "masks")
        return self.memory_size * sum(row_bytes[name] for name in fields)

    def schedule(self):
        """Return the learning rate of each pass of the retraining."""
        rates, position, period = [], 0, 1
        for epoch in range(self.epochs):
            if epoch == 0:
                rates.append(self.lr / 10)
                continue
            if epoch >= 2:  # the scheduler's step: on to the next pass
                position += 1
                if position >= period:
                    position, period = position - period, 2 * period
            cosine = (1 + math.cos(math.pi * position / period)) / 2
            rates.append(self.min_lr + (self.lr - self.min_lr) * cosine)
        return rates

    def consolidate(self, net, X, y):
        self.memory_.add(
            X, y, task=net.task_index_, mask=net.output_mask_, generator=net.generator_
        )
        self.retrain(net)

    def retrain(self, net):
        """Re-initialize ``net``'s network and train it on the memory alone."""
        generator = net.generator_
        device = next((p.device for p in net.module_.parameters()), None)
        # reset_parameters draws from torch's global generator.
        with torch.no_grad(), drawing_globally(generator, device):
            for layer in net.module_.modules():
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
        net.initialize_optimizer()
        rows = self.memory_.filled().to(self.memory_.X.device)
        X, y = self.memory_.X[rows], self.memory_.y[rows]
        plugins, mask = net.plugins_, net.output_mask_
        net.plugins_ = [] if self.augment is None else [clone(self.augment)]
        try:
            for lr in self.schedule():
                settings = ChunkSettings(
                    epochs=1,
                    batch_size=self.batch_size,
                    lr=lr,
                    momentum=self.momentum,
                    penalty_step="explicit",
                    output_mask=None,
                )
                net.train_chunk(X, y, settings, generator)
        finally:
            net.plugins_, net.output_mask_ = plugins, mask
