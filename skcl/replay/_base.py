import torch

from .._constraints import SIZE, StrOptions
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
    # Checked at every fit and partial_fit (see skcl._constraints); with the
    # bytes the memory will take (memory_bytes).
    _parameter_constraints: dict = {  # noqa: RUF012
        "memory_size": [SIZE],
        "memory": [StrOptions(set(MEMORIES))],
        "memory_batch_size": [SIZE],
    }

    def initialize(self, net):
        cls, params = self._memory_spec(net)
        self.memory_ = cls(**params)

    def _memory_spec(self, net):
        """Return the memory's class and parameters, from ours and ``net``'s."""
        size = self.memory_size
        if self.memory == "reservoir":
            return ReservoirMemory, {"capacity": size}
        if not isinstance(net.criterion_, torch.nn.CrossEntropyLoss):
            raise ValueError(
                "memory='class_balanced' needs class targets: use it with "
                "ContinualClassifier, or memory='reservoir'."
            )
        return ClassBalancedMemory, {"per_class": size, "n_classes": len(net.classes)}

    def check_state(self, net, X, y):
        """Also check the memory against our parameters and ``net``.

        The memory must be the one ``memory`` and ``memory_size`` build, at
        the current task, and its rows must hold inputs and targets of
        ``X``'s and ``y``'s shapes and dtypes, labels of ``net``'s classes
        and outputs (logits, masks) as wide as the network's.
        """
        super().check_state(net, X, y)
        memory = self.memory_
        cls, params = self._memory_spec(net)
        if type(memory) is not cls:
            raise ValueError(
                f"memory_ should be a {cls.__name__} (memory={self.memory!r})."
            )
        for name, value in params.items():
            if getattr(memory, name) != value:
                raise ValueError(
                    f"memory_.{name} is {getattr(memory, name)!r}, but memory_size="
                    f"{self.memory_size!r} and the network make it {value!r}."
                )
        task = None if net.task_index_ < 0 else net.task_index_
        if memory.task != task:
            raise ValueError(
                f"memory_.task is {memory.task!r}, but the current task is {task}."
            )
        classifier = isinstance(net.criterion_, torch.nn.CrossEntropyLoss)
        n_outputs = len(net.classes) if classifier else y.shape[1]
        try:
            memory.validate(
                X, y, n_classes=n_outputs if classifier else None, n_outputs=n_outputs
            )
        except ValueError as error:
            raise ValueError(f"memory_: {error}") from error

    # Whether the memory also keeps each sample's outputs (DER++'s logits).
    _stores_logits = False

    def memory_bytes(self, row_bytes, n_classes):
        """Return the bytes the memory allocates at its first write.

        Parameters
        ----------
        row_bytes : dict of str to int
            The bytes of one row of each of the memory's tensors, by name
            (``"X"``, ``"y"``, ``"tasks"``, ``"logits"``, ``"masks"``).
        n_classes : int
            The number of classes (outputs).

        Returns
        -------
        int
            The reservoir's ``memory_size`` rows, or the class-balanced
            memory's ``memory_size`` rows per class of one task (it grows
            by as much at each task).
        """
        rows = self.memory_size * (1 if self.memory == "reservoir" else n_classes)
        fields = ["X", "y", "tasks", "masks", *(["logits"] * self._stores_logits)]
        return rows * sum(row_bytes[name] for name in fields)

    def begin_task(self, net):
        self.memory_.begin_task(net.task_index_)

    def end_task(self, net):
        self.memory_.end_task()

    def remember(self, net, step, logits=None):
        """Offer the step's current batch to the memory."""
        self.memory_.add(
            step.X,
            step.y,
            task=net.task_index_,
            logits=logits,
            mask=net.output_mask_,
            generator=net.generator_,
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
