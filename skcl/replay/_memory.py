"""What the replay memories share: rows on the training device, written in order."""

from abc import ABC, abstractmethod

import torch


class Memory(ABC):
    """Base of the replay memories: stored samples, one row each.

    Every row holds an input (``X``), its encoded target (``y``), the task it
    came from (``tasks``) and, where the strategy asks, the network's outputs
    when it was stored (``logits``) and the outputs it trained (``masks``,
    with task-masked outputs). The tensors live on the training device and
    are allocated at the first write; rows beyond ``len(memory)`` are unused.
    Subclasses decide which rows a batch writes (:meth:`slots`) and which
    rows are filled (:meth:`filled`).
    """

    _fields = ("X", "y", "tasks", "logits", "masks")

    def __init__(self):
        for name in self._fields:
            setattr(self, name, None)
        self.task = None

    def __len__(self):
        return len(self.filled())

    @abstractmethod
    def filled(self):
        """Return the indices of the filled rows (a CPU tensor)."""

    @abstractmethod
    def slots(self, y, generator=None):
        """Return ``(slots, rows)``: where the batch's rows are written.

        A row that a later row of the batch overwrites is left out. Random
        draws come from ``generator`` (None: torch's global generator).
        """

    @abstractmethod
    def rows_needed(self):
        """Return the number of rows the storage needs now."""

    def add(self, X, y, *, task, logits=None, mask=None, generator=None):
        """Write a batch of samples of task ``task`` (``mask``: its outputs).

        A memory that draws where they go draws from ``generator`` (a plug-in
        passes ``net.generator_``; None: torch's global generator).
        """
        slots, rows = self.slots(y, generator)
        self._reserve(X, y, logits, mask)
        if len(slots) == 0:
            return
        device = self.X.device
        slots, rows = slots.to(device), rows.to(device)
        self.X.index_copy_(0, slots, X.index_select(0, rows))
        self.y.index_copy_(0, slots, y.index_select(0, rows))
        self.tasks.index_fill_(0, slots, task)
        if self.logits is not None:
            self.logits.index_copy_(0, slots, logits.index_select(0, rows))
        if self.masks is not None:
            self.masks[slots] = mask

    def _reserve(self, X, y, logits, mask):
        rows = self.rows_needed()
        if self.X is not None and len(self.X) >= rows:
            return
        like = {"X": X, "y": y, "tasks": y.new_empty((), dtype=torch.long)}
        if logits is not None:
            like["logits"] = logits
        if mask is not None:
            like["masks"] = mask.expand(len(X), -1)
        for name, tensor in like.items():
            grown = tensor.new_zeros((rows, *tensor.shape[1:]))
            old = getattr(self, name)
            if old is not None:
                grown[: len(old)] = old
            setattr(self, name, grown)

    def earlier(self):
        """Return the indices of the filled rows of the tasks that ended."""
        rows = self.filled()
        if not len(rows):
            return rows
        return (self.tasks[: len(rows)] < self.task).nonzero()[:, 0].cpu()

    def sample(self, n, *, earlier_tasks=False, generator=None):
        """Return the indices of up to ``n`` filled rows drawn without replacement.

        All the filled rows if there are at most ``n`` (only those of the tasks
        that ended, with ``earlier_tasks``); None if there is none. The
        indices are on the memory's device. The draw comes from ``generator``
        (a plug-in passes ``net.generator_``; None: torch's global generator).
        """
        rows = self.earlier() if earlier_tasks else self.filled()
        if len(rows) == 0:
            return None
        if len(rows) > n:
            rows = rows[torch.randperm(len(rows), generator=generator)[:n]]
        return rows.to(self.X.device)

    def begin_task(self, task):
        """Open task ``task``: the rows of earlier tasks are those stored so far."""
        self.task = task

    @abstractmethod
    def end_task(self):
        """Close the current task."""

    @property
    def nbytes(self):
        """The bytes the memory's tensors take."""
        tensors = [getattr(self, name) for name in self._fields]
        return sum(t.nelement() * t.element_size() for t in tensors if t is not None)

    def to(self, device):
        """Move the memory to ``device``; return self."""
        for name in self._fields:
            tensor = getattr(self, name)
            if tensor is not None:
                setattr(self, name, tensor.to(device))
        return self

    def validate(self, X=None, y=None, *, n_classes=None, n_outputs=None):
        """Raise ValueError naming the field unless the state can work (once loaded).

        Always checked: the counts agree with the parameters
        (:meth:`check_counts`), every tensor holds the storage's rows, the
        task indices are int64 in ``[0, task]``, the float values are finite,
        and the unused rows are empty (zeros, as allocated): rows beyond the
        filled ones mean counts that contradict the rows.

        Parameters
        ----------
        X, y : Tensor or None, default=None
            Empty batches shaped and typed as the samples offered: the stored
            inputs and targets must have their shape and dtype.
        n_classes : int or None, default=None
            Targets are class indices, below ``n_classes``.
        n_outputs : int or None, default=None
            The stored logits and output masks are ``n_outputs`` wide.
        """
        self.check_counts()
        tensors = {
            n: getattr(self, n) for n in self._fields if getattr(self, n) is not None
        }
        if "X" not in tensors:
            if tensors or len(self.filled()):
                raise ValueError("the memory holds samples but no inputs.")
            return
        filled = self.filled()
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1 or (len(filled) and int(filled.max()) >= min(lengths)):
            raise ValueError("the memory's tensors do not hold its rows.")
        self._check_layout(tensors, X, y, n_outputs)
        self._check_values(tensors, filled.to(self.X.device), n_classes)

    def _check_layout(self, tensors, X, y, n_outputs):
        """Check each tensor's row shape and dtype against what is offered."""
        expected = {"tasks": ((), torch.long)}
        if X is not None:
            expected["X"] = (X.shape[1:], X.dtype)
        if y is not None:
            expected["y"] = (y.shape[1:], y.dtype)
        if n_outputs is not None:
            expected["logits"] = ((n_outputs,), None if X is None else X.dtype)
            expected["masks"] = ((n_outputs,), torch.bool)
        for name, (shape, dtype) in expected.items():
            tensor = tensors.get(name)
            if tensor is not None and (
                tensor.shape[1:] != shape or dtype not in (None, tensor.dtype)
            ):
                raise ValueError(
                    f"the memory's {name} should be a {dtype} tensor of rows of "
                    f"shape {tuple(shape)}, got {tensor.dtype} rows of shape "
                    f"{tuple(tensor.shape[1:])}."
                )

    def _check_values(self, tensors, filled, n_classes):
        """Check the values: finite, unused rows empty, tasks and labels in range."""
        unused = torch.ones(len(self.X), dtype=torch.bool, device=self.X.device)
        unused[filled] = False
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"the memory's {name} holds NaN or infinite values.")
            # Rows are allocated as zeros and written in order of the counts.
            if bool(tensor[unused].any()):
                raise ValueError(
                    f"the memory's {name} holds values in rows that its counts say "
                    "are unused."
                )
        last = float("inf") if self.task is None else self.task
        bounds = {"tasks": (0, last + 1, f"task indices in [0, {last}]")}
        if n_classes is not None:
            bounds["y"] = (0, n_classes, f"labels of the {n_classes} classes")
        for name, (low, high, words) in bounds.items():
            values = tensors[name][filled]
            if len(values) and not low <= int(values.min()) <= int(values.max()) < high:
                raise ValueError(f"the memory's {name} should hold {words}.")

    def check_counts(self):
        """Raise ValueError unless the counts agree with the parameters and rows."""
        task = self.task
        if task is not None and (
            isinstance(task, bool) or not isinstance(task, int) or task < 0
        ):
            raise ValueError(f"the memory's task should be an int >= 0, got {task!r}.")
