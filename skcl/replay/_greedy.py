import numpy as np
import torch

from .._constraints import SIZE, check_params
from ._memory import Memory


class GreedyMemory(Memory):
    """GDumb's class-balanced greedy sampler.

    Samples are offered one by one, in order. A sample enters while the
    memory has room; once it is full, a sample enters only if its class
    holds fewer rows than the largest class, and it then replaces a row of
    the largest class drawn uniformly (of several largest classes, the one
    of the lowest index) (Prabhu et al., "GDumb: A Simple Approach that
    Questions Our Progress in Continual Learning", ECCV 2020). The classes
    thus stay balanced within one row. Draws come from the generator given
    to :meth:`add` (None: torch's global generator).

    Parameters
    ----------
    capacity : int
        The number of samples kept.
    n_classes : int
        The number of classes (targets are their indices).

    Attributes
    ----------
    n_filled : int
        The rows filled (up to ``capacity``).

    Examples
    --------
    >>> import torch
    >>> from skcl.replay import GreedyMemory
    >>> memory = GreedyMemory(capacity=4, n_classes=3)
    >>> memory.add(torch.zeros(6, 1), torch.tensor([0, 0, 0, 0, 1, 2]), task=0)
    >>> torch.bincount(memory.y[memory.filled()], minlength=3).tolist()
    [2, 1, 1]
    """

    _training_state = ("capacity", "n_classes", "n_filled", "task", *Memory._fields)
    _parameter_constraints: dict = {  # noqa: RUF012
        "capacity": [SIZE],
        "n_classes": [SIZE],
    }

    def __init__(self, capacity, n_classes):
        check_params(self, {"capacity": capacity, "n_classes": n_classes})
        super().__init__()
        self.capacity, self.n_classes = capacity, n_classes
        self.n_filled = 0

    def check_counts(self):
        """Check ``capacity``, ``n_classes``, ``n_filled`` (in [0, capacity]), rows."""
        super().check_counts()
        check_params(self, {"capacity": self.capacity, "n_classes": self.n_classes})
        n_filled = self.n_filled
        if isinstance(n_filled, bool) or not isinstance(n_filled, int):
            raise ValueError(f"n_filled should be an int, got {n_filled!r}.")
        if not 0 <= n_filled <= self.capacity:
            raise ValueError(
                f"n_filled should be in [0, {self.capacity}], got {n_filled}."
            )
        if self.X is not None and len(self.X) != self.capacity:
            raise ValueError(
                f"the memory holds {len(self.X)} rows, not its capacity "
                f"{self.capacity}."
            )

    def filled(self):
        return torch.arange(self.n_filled)

    def end_task(self):
        """Nothing to close: the classes, not the tasks, share the memory."""

    def rows_needed(self):
        return self.capacity

    def slots(self, y, generator=None):
        classes = y.detach().cpu().numpy()
        labels = np.full(self.capacity, -1)
        if self.y is not None:
            labels[: self.n_filled] = self.y[: self.n_filled].cpu().numpy()
        counts = np.bincount(labels[: self.n_filled], minlength=self.n_classes)
        draws = torch.rand(len(classes), dtype=torch.float64, generator=generator)
        draws = draws.numpy()
        written = {}  # slot -> row: of two rows taking a slot, the later stays
        for row, label in enumerate(classes):
            if self.n_filled < self.capacity:
                slot = self.n_filled
                self.n_filled += 1
            elif counts[label] < counts.max():
                largest = int(counts.argmax())
                rows = np.flatnonzero(labels == largest)
                slot = int(rows[int(draws[row] * len(rows))])
                counts[largest] -= 1
            else:
                continue
            labels[slot] = label
            counts[label] += 1
            written[slot] = row
        slots = np.fromiter(written.keys(), dtype=np.int64, count=len(written))
        rows = np.fromiter(written.values(), dtype=np.int64, count=len(written))
        return torch.from_numpy(slots), torch.from_numpy(rows)
