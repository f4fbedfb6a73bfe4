import torch

from ._base import Replay


class ER(Replay):
    """Experience replay: every step also trains on a batch of the memory.

    Each step's loss is the criterion over the current mini-batch and up to
    ``memory_batch_size`` samples drawn from the memory (without
    replacement), together (one mean over both); the mini-batch is then
    offered to the memory (Chaudhry et al., "On Tiny Episodic Memories in
    Continual Learning", 2019). Replay starts at the first step: the memory
    already holds samples of the current task.

    Parameters
    ----------
    memory_size : int, default=200
        With ``memory="reservoir"``, the number of samples kept; with
        ``memory="class_balanced"``, the number kept per class and task.
    memory : {"reservoir", "class_balanced"}, default="reservoir"
        ``"reservoir"``: a uniform sample of the stream
        (:class:`ReservoirMemory`); ``"class_balanced"``: the latest samples
        of each class of each task (:class:`ClassBalancedMemory`).
    memory_batch_size : int, default=64
        The memory samples replayed at each step.

    Attributes
    ----------
    memory_ : ReservoirMemory or ClassBalancedMemory
        The memory. It takes ``memory_.nbytes`` bytes on the training device:
        per row, the input's and the target's bytes and 8 for its task (and
        the output mask's, with task-masked outputs). The rows are allocated
        at the first write: ``memory_size`` of them for the reservoir; for
        the class-balanced memory, the filled rows of the ended tasks plus
        ``memory_size`` per class for the current one.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import ER
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(replay=ER(memory_size=20), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> len(clf.replay_.memory_), clf.replay_.memory_.n_seen
    (20, 100)
    """

    # A stack of candidates that draw the same batches shares one memory;
    # otherwise each candidate replays from its own (see Plugin).
    stackable_steps = ("before_forward", "after_step")
    candidate_steps = ("before_forward", "after_step")

    def __init__(self, *, memory_size=200, memory="reservoir", memory_batch_size=64):
        self.memory_size = memory_size
        self.memory = memory
        self.memory_batch_size = memory_batch_size

    def before_forward(self, net, step):
        rows = self.memory_.sample(self.memory_batch_size, generator=net.generator_)
        if rows is None:
            return
        X, y, masks = self.replayed(net, rows)
        step.inputs = torch.cat([step.X, X])
        step.targets = torch.cat([step.y, y])
        if masks is not None:
            step.output_mask = torch.cat(
                [step.output_mask.expand(len(step.X), -1), masks]
            )

    def after_step(self, net, step):
        self.remember(net, step)
