from .._constraints import STRENGTH
from ._der import DER


class DERPP(DER):
    """Dark experience replay++: replay the stored outputs and the labels.

    The memory keeps each sample's input, target and the network's outputs
    (logits) when it was stored. Each step adds to the task loss
    ``alpha * MSE(f(x'), z') + beta * L(f(x''), y'')`` on two batches drawn
    independently from the memory, ``L`` being the training criterion
    (Buzzega et al., "Dark Experience for General Continual Learning",
    NeurIPS 2020); the current batch is then offered to the memory with the
    outputs of this step's forward pass. With ``beta=0`` it is :class:`DER`.

    Parameters
    ----------
    alpha : float, default=0.1
        Weight of the outputs' replay.
    beta : float, default=0.5
        Weight of the targets' replay.
    memory_size : int, default=200
        The samples kept (per class and task with
        ``memory="class_balanced"``).
    memory : {"reservoir", "class_balanced"}, default="reservoir"
        How the memory is filled (see :class:`ER`).
    memory_batch_size : int, default=64
        The size of each of the two memory batches.

    Attributes
    ----------
    memory_ : ReservoirMemory or ClassBalancedMemory
        The memory; per sample it also stores ``n_outputs`` logits (see
        :class:`ER` for its size in bytes).

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import DERPP
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(replay=DERPP(memory_size=20), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> tuple(clf.replay_.memory_.logits.shape)
    (20, 2)
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **DER._parameter_constraints,
        "beta": [STRENGTH],
    }

    # In a stack, the hooks run once per candidate (see Plugin).
    candidate_steps = ("loss", "after_step")

    def __init__(
        self,
        *,
        alpha=0.1,
        beta=0.5,
        memory_size=200,
        memory="reservoir",
        memory_batch_size=64,
    ):
        self.alpha = alpha
        self.beta = beta
        self.memory_size = memory_size
        self.memory = memory
        self.memory_batch_size = memory_batch_size

    def loss(self, net, step):
        term = super().loss(net, step)
        if term is None or not self.beta:
            return term
        rows = self.memory_.sample(self.memory_batch_size, generator=net.generator_)
        return term + self.beta * self.replay_loss(net, rows)
