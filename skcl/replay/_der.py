import torch.nn.functional as F

from .._constraints import STRENGTH
from ._base import Replay


class DER(Replay):
    """Dark experience replay: replay the network's stored outputs.

    The memory keeps each sample's input, target and the network's outputs
    (logits) when it was stored. Each step adds ``alpha * MSE(f(x'), z')``
    on a batch drawn from the memory to the task loss (Buzzega et al.,
    "Dark Experience for General Continual Learning", NeurIPS 2020); the
    current batch is then offered to the memory with the outputs of this
    step's forward pass. :class:`DERPP` adds a replay of the labels; DER is
    DER++ with ``beta=0``, step for step.

    It applies to :class:`~skcl.ContinualRegressor` (the outputs replayed
    are the predictions), to ``multi_head=True`` (the stored outputs are
    all the network's) and to task-free streams (one task): the reservoir
    samples the stream as it comes.

    Parameters
    ----------
    alpha : float, default=0.1
        Weight of the outputs' replay.
    memory_size : int, default=200
        The samples kept (per class and task with
        ``memory="class_balanced"``).
    memory : {"reservoir", "class_balanced"}, default="reservoir"
        How the memory is filled (see :class:`ER`).
    memory_batch_size : int, default=64
        The memory samples replayed at each step.

    Attributes
    ----------
    memory_ : ReservoirMemory or ClassBalancedMemory
        The memory; per sample it also stores ``n_outputs`` logits (see
        :class:`ER` for its size in bytes).

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import DER
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(replay=DER(memory_size=20), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> tuple(clf.replay_.memory_.logits.shape)
    (20, 2)
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **Replay._parameter_constraints,
        "alpha": [STRENGTH],
    }
    _stores_logits = True

    # In a stack, the hooks run once per candidate (see Plugin).
    candidate_steps = ("loss", "after_step")

    def __init__(
        self, *, alpha=0.1, memory_size=200, memory="reservoir", memory_batch_size=64
    ):
        self.alpha = alpha
        self.memory_size = memory_size
        self.memory = memory
        self.memory_batch_size = memory_batch_size

    def loss(self, net, step):
        memory = self.memory_
        rows = memory.sample(self.memory_batch_size, generator=net.generator_)
        if rows is None:
            return None
        stored = net.module_(memory.X.index_select(0, rows))
        return self.alpha * F.mse_loss(stored, memory.logits.index_select(0, rows))

    def after_step(self, net, step):
        self.remember(net, step, logits=step.logits[: len(step.X)].detach())
