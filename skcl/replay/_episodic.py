import torch

from ._class_balanced import ClassBalancedMemory


class EpisodicMemory(ClassBalancedMemory):
    """The latest ``per_task`` samples of each task, in one ring buffer per task.

    GEM's episodic memory (Lopez-Paz & Ranzato, NeurIPS 2017): a
    :class:`ClassBalancedMemory` whose samples all count as one class, so
    the rows of a task are its last ``per_task`` samples offered, whatever
    their labels. Trained over shuffled epochs, they are a uniform sample
    of the task's last epoch.

    Parameters
    ----------
    per_task : int
        Rows per task.

    Examples
    --------
    >>> import torch
    >>> from skcl.replay import EpisodicMemory
    >>> memory = EpisodicMemory(per_task=2)
    >>> memory.add(torch.arange(4.0)[:, None], torch.tensor([0, 1, 0, 0]), task=0)
    >>> memory.X[memory.filled()].ravel().tolist()  # the latest two
    [2.0, 3.0]
    """

    def __init__(self, per_task):
        super().__init__(per_task, 1)

    @property
    def per_task(self):
        return self.per_class

    def slots(self, y, generator=None):
        return super().slots(torch.zeros(len(y), dtype=torch.long))
