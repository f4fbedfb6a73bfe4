import numpy as np
import torch

from .._constraints import SIZE, check_params
from ._memory import Memory


class ClassBalancedMemory(Memory):
    """The latest samples of each class of each task, in ring buffers.

    Each task has ``per_class`` rows per class; a new sample of a class
    overwrites the oldest of its rows (A-GEM's episodic memory, Chaudhry et
    al., ICLR 2019). When the task ends, its filled rows join the memory of
    earlier tasks, which they never leave: the memory grows by at most
    ``per_class * n_classes`` rows per task.

    Parameters
    ----------
    per_class : int
        Rows per class and task.
    n_classes : int
        The number of classes (targets are their indices).

    Attributes
    ----------
    n_stored : int
        The rows of the tasks that ended.
    class_counts : Tensor
        The samples of each class seen in the current task, on the CPU (the
        slots are computed there; :meth:`to` moves only the rows).

    Examples
    --------
    >>> import torch
    >>> from skcl.replay import ClassBalancedMemory
    >>> memory = ClassBalancedMemory(per_class=1, n_classes=2)
    >>> memory.add(torch.arange(4.0)[:, None], torch.tensor([0, 1, 0, 0]), task=0)
    >>> memory.X[memory.filled()].ravel().tolist()  # the latest of each class
    [3.0, 1.0]
    """

    _training_state = (
        "per_class",
        "n_classes",
        "n_stored",
        "class_counts",
        "task",
        *Memory._fields,
    )

    _parameter_constraints: dict = {  # noqa: RUF012
        "per_class": [SIZE],
        "n_classes": [SIZE],
    }

    def __init__(self, per_class, n_classes):
        check_params(self, {"per_class": per_class, "n_classes": n_classes})
        super().__init__()
        self.per_class, self.n_classes = per_class, n_classes
        self.n_stored = 0
        self.class_counts = torch.zeros(n_classes, dtype=torch.long)

    def check_counts(self):
        """Check ``per_class``, ``n_classes``, ``n_stored``, ``class_counts``, rows.

        The ended tasks (``task`` of them) stored at most ``per_class *
        n_classes`` rows each; the storage holds the stored rows, plus the
        current task's once it wrote one.
        """
        super().check_counts()
        check_params(self, {"per_class": self.per_class, "n_classes": self.n_classes})
        n_stored, task = self.n_stored, self.task or 0
        bound = self.per_class * self.n_classes * task
        if isinstance(n_stored, bool) or not isinstance(n_stored, int):
            raise ValueError(f"n_stored should be an int, got {n_stored!r}.")
        if not 0 <= n_stored <= bound:
            raise ValueError(
                f"n_stored should be in [0, {bound}] after {task} ended tasks, got "
                f"{n_stored}."
            )
        counts = self.class_counts
        if not (
            isinstance(counts, torch.Tensor)
            and counts.dtype == torch.long
            and counts.shape == (self.n_classes,)
            and bool((counts >= 0).all())
        ):
            raise ValueError(
                f"class_counts should be {self.n_classes} int64 counts >= 0."
            )
        rows = None if self.X is None else len(self.X)
        if rows not in (None, n_stored, self.rows_needed()) or (
            rows is None and n_stored
        ):
            raise ValueError(
                f"the memory holds {rows} rows for {n_stored} stored ones and "
                f"{self.per_class} per class of the current task."
            )

    def rows_needed(self):
        return self.n_stored + self.per_class * self.n_classes

    def _current(self):
        """The filled rows of the current task."""
        k = self.per_class
        used = self.class_counts.clamp(max=k)
        grid = torch.arange(self.n_classes * k).view(-1, k)
        return self.n_stored + grid[torch.arange(k) < used[:, None]]

    def filled(self):
        return torch.cat([torch.arange(self.n_stored), self._current()])

    def earlier(self):
        return torch.arange(self.n_stored)

    def slots(self, y, generator=None):
        classes = y.detach().cpu().numpy()
        k, counts = self.per_class, self.class_counts.numpy()
        order = np.argsort(classes, kind="stable")
        ranked = classes[order]
        occurrence = np.empty(len(classes), dtype=np.int64)
        occurrence[order] = np.arange(len(classes)) - np.searchsorted(ranked, ranked)
        in_batch = np.bincount(classes, minlength=self.n_classes)
        # A class's last k rows of the batch stay; they take distinct slots.
        rows = np.flatnonzero(occurrence >= in_batch[classes] - k)
        position = (counts[classes[rows]] + occurrence[rows]) % k
        slots = self.n_stored + classes[rows] * k + position
        counts += in_batch
        return torch.from_numpy(slots), torch.from_numpy(rows)

    def end_task(self):
        if self.X is None:
            return
        current = self._current()
        rows = current.to(self.X.device)
        start, stop = self.n_stored, self.n_stored + len(current)
        for name in self._fields:
            tensor = getattr(self, name)
            if tensor is not None:
                tensor[start:stop] = tensor.index_select(0, rows)
                setattr(self, name, tensor[:stop].clone())
        self.n_stored = stop
        self.class_counts.zero_()
