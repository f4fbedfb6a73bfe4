import numbers

import torch

from .._plugin import Plugin, mask_outputs
from ._class_balanced import ClassBalancedMemory
from ._reservoir import ReservoirMemory

MEMORIES = ("reservoir", "class_balanced")


class Replay(Plugin):
    """Base of the strategies that keep a memory of the stream's samples.

    A replay strategy is a :class:`skcl.Plugin` passed as a continual
    estimator's ``replay``; it composes with the ``penalty``. This base holds
    the memory, built at :meth:`initialize` from the parameters
    ``memory_size`` and ``memory`` (which cannot change between
    ``partial_fit`` calls), and opens and closes it with each task. A
    subclass defines its constructor (with those two parameters and
    ``memory_batch_size``) and the per-step hooks that read and write
    :attr:`memory_`.

    Attributes
    ----------
    memory_ : ReservoirMemory or ClassBalancedMemory
        The memory, on the training device.

    Examples
    --------
    A strategy that adds the memory's loss to each step's (ER with a
    separate mean):

    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import Replay
    >>> class MemoryLoss(Replay):
    ...     def __init__(self, *, memory_size=50, memory="reservoir",
    ...                  memory_batch_size=32):
    ...         self.memory_size = memory_size
    ...         self.memory = memory
    ...         self.memory_batch_size = memory_batch_size
    ...     def loss(self, net, step):
    ...         rows = self.memory_.sample(self.memory_batch_size)
    ...         return None if rows is None else self.replay_loss(net, rows)
    ...     def after_step(self, net, step):
    ...         self.remember(net, step)
    >>> X, y = np.random.RandomState(0).normal(size=(80, 3)), np.arange(80) % 2
    >>> clf = ContinualClassifier(replay=MemoryLoss(), max_epochs=1)
    >>> len(clf.fit(X, y, task_id=np.repeat([0, 1], 40)).replay_.memory_)
    50
    """

    _frozen_params = ("memory_size", "memory")

    def initialize(self, net):
        for name in ("memory_size", "memory_batch_size"):
            value = getattr(self, name)
            if not (
                isinstance(value, numbers.Integral)
                and not isinstance(value, bool)
                and value > 0
            ):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if self.memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, got {self.memory!r}.")
        size = self.memory_size
        if self.memory == "reservoir":
            self.memory_ = ReservoirMemory(size)
            return
        if not isinstance(net.criterion_, torch.nn.CrossEntropyLoss):
            raise ValueError(
                "memory='class_balanced' needs class targets: use it with "
                "ContinualClassifier, or memory='reservoir'."
            )
        self.memory_ = ClassBalancedMemory(size, len(net.classes))

    def begin_task(self, net):
        self.memory_.begin_task(net.task_index_)

    def end_task(self, net):
        self.memory_.end_task()

    def remember(self, net, step, logits=None):
        """Offer the step's current batch to the memory."""
        self.memory_.add(
            step.X, step.y, task=net.task_index_, logits=logits, mask=net.output_mask_
        )

    def replayed(self, net, rows):
        """Return the memory's inputs, targets and output masks at ``rows``."""
        memory = self.memory_
        masks = None if memory.masks is None else memory.masks.index_select(0, rows)
        return memory.X.index_select(0, rows), memory.y.index_select(0, rows), masks

    def replay_loss(self, net, rows):
        """Return the training criterion on the memory's samples at ``rows``."""
        X, y, masks = self.replayed(net, rows)
        return net.criterion_(mask_outputs(net.module_(X), masks), y)
