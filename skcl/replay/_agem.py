import torch

from .._constraints import StrOptions
from ._base import MEMORIES, Replay
from ._episodic import EpisodicMemory


class AGEM(Replay):
    """Averaged gradient episodic memory: steps that do not raise the memory's loss.

    At each step the reference gradient ``g_ref`` is the gradient of the
    loss on up to ``memory_batch_size`` samples of the earlier tasks' memory;
    when the step's gradient ``g`` conflicts with it (``g . g_ref < 0``) it is
    projected, ``g <- g - (g . g_ref / g_ref . g_ref) g_ref``, over all the
    trainable parameters at once (Chaudhry et al., "Efficient Lifelong
    Learning with A-GEM", ICLR 2019). The current batch is then offered to
    the memory; only samples of tasks that ended serve as references.

    Parameters
    ----------
    memory_size : int, default=1
        With ``memory="class_balanced"``, the samples kept per class and task
        (the authors' episodic memory); with ``memory="episodic"``, the
        samples kept per task; with ``memory="reservoir"``, the number of
        samples kept.
    memory : {"class_balanced", "episodic", "reservoir"}, default="class_balanced"
        How the memory is filled (see :class:`ER`); ``"episodic"`` keeps the
        latest ``memory_size`` samples of each task whatever their labels, a
        uniform sample of the task (:class:`EpisodicMemory`, GEM's memory; the
        DER paper's A-GEM keeps ``M // T`` random samples of each task).
    memory_batch_size : int, default=64
        The memory samples of the reference gradient.

    Attributes
    ----------
    memory_ : ClassBalancedMemory, EpisodicMemory or ReservoirMemory
        The memory (see :class:`ER` for its size in bytes).
    n_projected_ : int
        The steps whose gradient was projected.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import AGEM
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(replay=AGEM(), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> len(clf.replay_.memory_)  # one sample per class of task 0 (and of task 1)
    4
    """

    # In a stack, the hooks run once per candidate (see Plugin).
    candidate_steps = ("after_backward", "after_step")

    _parameter_constraints: dict = {  # noqa: RUF012
        **Replay._parameter_constraints,
        "memory": [StrOptions({*MEMORIES, "episodic"})],
    }

    def __init__(self, *, memory_size=1, memory="class_balanced", memory_batch_size=64):
        self.memory_size = memory_size
        self.memory = memory
        self.memory_batch_size = memory_batch_size

    def _memory_spec(self, net):
        if self.memory == "episodic":
            return EpisodicMemory, {"per_task": self.memory_size}
        return super()._memory_spec(net)

    def memory_bytes(self, row_bytes, n_classes):
        """Return the bytes of the memory's first allocation (see :class:`Replay`).

        With ``memory="episodic"``, one task's ``memory_size`` rows.
        """
        return super().memory_bytes(
            row_bytes, 1 if self.memory == "episodic" else n_classes
        )

    def initialize(self, net):
        super().initialize(net)
        self.n_projected_ = 0

    def after_backward(self, net, step):
        rows = self.memory_.sample(
            self.memory_batch_size, earlier_tasks=True, generator=net.generator_
        )
        if rows is None:
            return
        params = [p for p in net.module_.parameters() if p.requires_grad]
        reference = torch.autograd.grad(
            self.replay_loss(net, rows), params, allow_unused=True
        )
        used = [(p, r) for p, r in zip(params, reference, strict=True) if r is not None]
        for p, _ in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads, reference = [p.grad for p, _ in used], [r for _, r in used]
        dot = _dot(grads, reference)
        if dot >= 0:
            return
        scale = (dot / _dot(reference, reference)).item()
        torch._foreach_add_(grads, reference, alpha=-scale)
        self.n_projected_ += 1

    def after_step(self, net, step):
        self.remember(net, step)


def _dot(a, b):
    """The dot product of two lists of tensors, as flat vectors."""
    return torch.stack(
        [torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True)]
    ).sum()
