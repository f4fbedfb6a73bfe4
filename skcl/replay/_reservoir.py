import numpy as np
import torch

from .._constraints import SIZE, check_params
from ._memory import Memory


class ReservoirMemory(Memory):
    """A uniform sample of the stream, by reservoir sampling.

    Vitter's algorithm R: the ``n``-th sample seen (1-based) is stored while
    ``n <= capacity``; after that it replaces a row drawn uniformly from
    ``[0, n)`` if that row exists. Every sample seen is then in memory with
    probability ``capacity / n``. Draws come from the generator given to
    :meth:`add` (a plug-in's ``net.generator_``).

    Parameters
    ----------
    capacity : int
        The number of samples kept.

    Attributes
    ----------
    n_seen : int
        The number of samples offered so far.

    Examples
    --------
    >>> import torch
    >>> from skcl.replay import ReservoirMemory
    >>> memory = ReservoirMemory(3)
    >>> for k in range(4):
    ...     memory.add(torch.full((5, 2), float(k)), torch.zeros(5), task=k)
    >>> len(memory), memory.n_seen
    (3, 20)
    """

    _training_state = ("capacity", "n_seen", "task", *Memory._fields)
    _parameter_constraints: dict = {"capacity": [SIZE]}  # noqa: RUF012

    def __init__(self, capacity):
        check_params(self, {"capacity": capacity})
        super().__init__()
        self.capacity = capacity
        self.n_seen = 0

    def check_counts(self):
        """Check ``capacity``, ``n_seen`` (an int in [0, 2**53]) and the rows.

        Beyond 2**53 samples the draws, computed in float64, are no longer
        uniform: no stream of that length is trained.
        """
        super().check_counts()
        check_params(self, {"capacity": self.capacity})
        n_seen = self.n_seen
        if isinstance(n_seen, bool) or not isinstance(n_seen, int):
            raise ValueError(f"n_seen should be an int, got {n_seen!r}.")
        if not 0 <= n_seen <= 2**53:
            raise ValueError(f"n_seen should be in [0, 2**53], got {n_seen}.")
        if self.X is not None and len(self.X) != self.capacity:
            raise ValueError(
                f"the memory holds {len(self.X)} rows, not its capacity "
                f"{self.capacity}."
            )

    def filled(self):
        return torch.arange(min(self.n_seen, self.capacity))

    def end_task(self):
        """Nothing to close: the reservoir samples the whole stream."""

    def rows_needed(self):
        return self.capacity

    def slots(self, y, generator=None):
        n, capacity = len(y), self.capacity
        seen = np.arange(self.n_seen + 1, self.n_seen + n + 1, dtype=np.float64)
        uniform = torch.rand(n, dtype=torch.float64, generator=generator)
        draws = np.floor(uniform.numpy() * seen)
        self.n_seen += n
        slots = np.where(seen <= capacity, seen - 1, draws).astype(np.int64)
        rows = np.flatnonzero(slots < capacity)
        slots = slots[rows]
        if len(slots) > 1:  # of two rows drawing one slot, the later one stays
            _, last = np.unique(slots[::-1], return_index=True)
            slots, rows = slots[::-1][last], rows[::-1][last]
        return torch.from_numpy(slots), torch.from_numpy(rows)
