import numbers

import numpy as np
import scipy.linalg
import scipy.optimize
import torch

from .._constraints import SIZE, STRENGTH, Interval
from ._base import Replay
from ._episodic import EpisodicMemory


def solve_dual(gram, dots, margin, eps):
    """Return GEM's dual solution ``v`` (float64, one per constraint).

    ``v`` minimizes ``1/2 v^T (gram + eps I) v + dots^T v`` subject to
    ``v >= margin``; with ``u = v - margin`` it is a least-squares problem
    with ``u >= 0`` on the Cholesky factor, which Lawson and Hanson's
    active-set method (:func:`scipy.optimize.nnls`) solves exactly.
    """
    P = gram + eps * np.eye(len(gram))
    linear = dots + P @ np.full(len(gram), margin)
    factor = scipy.linalg.cholesky(P, lower=True)
    # 1/2 u^T P u + linear^T u = 1/2 |L^T u + L^-1 linear|^2 + constant
    target = -scipy.linalg.solve_triangular(factor, linear, lower=True)
    u, _ = scipy.optimize.nnls(factor.T, target)
    return u + margin


class GEM(Replay):
    """Gradient episodic memory: steps that do not raise any past task's loss.

    The memory keeps the latest ``memory_size`` samples of each task
    (:class:`EpisodicMemory`). At each step, ``g_k`` is the gradient of the
    loss on task ``k``'s memory, for every task that ended; when the step's
    gradient ``g`` conflicts with any of them (``g . g_k < 0``), it becomes
    ``g + G^T v``, ``G`` holding the ``g_k`` as rows and ``v`` solving the
    dual quadratic program ``min_v 1/2 v^T (G G^T + eps I) v + (G g)^T v``
    subject to ``v >= margin`` (Lopez-Paz & Ranzato, "Gradient Episodic
    Memory for Continual Learning", NeurIPS 2017; the authors' code). The
    program, as small as the number of past tasks, is solved exactly in
    float64 (:func:`solve_dual`). The current batch is then offered to the
    memory.

    ``memory_size`` is per task, as the paper's ``n_memories``: the memory
    grows by ``memory_size`` rows per task (the DER paper's total budget
    ``M`` over ``T`` tasks is ``memory_size = M // T``). One extra forward
    and backward pass per past task and step.

    It applies to :class:`~skcl.ContinualRegressor` (the memory's loss is
    the training criterion), to ``multi_head=True`` (each past task's loss
    on its own outputs: task-incremental) and to a single head
    (class- and domain-incremental). On a task-free stream (one task) there
    is no past task and it trains as without replay.

    Parameters
    ----------
    memory_size : int, default=256
        The samples kept per task.
    margin : float, default=0.5
        The lower bound of ``v`` (the paper's memory strength ``gamma``):
        above 0, projected steps also move toward lowering the past losses.
    eps : float, default=1e-3
        Added to the diagonal of ``G G^T`` (the authors' value): the
        constraints hold up to ``eps * v_k``.

    Attributes
    ----------
    memory_ : EpisodicMemory
        The memory (see :class:`ER` for a row's bytes).
    n_projected_ : int
        The steps whose gradient was projected.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import GEM
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(120, 4)), np.arange(120) % 2
    >>> clf = ContinualClassifier(replay=GEM(memory_size=10), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1, 2], 40))
    >>> len(clf.replay_.memory_)  # 10 per task
    30
    """

    _frozen_params = ("memory_size",)
    _parameter_constraints: dict = {  # noqa: RUF012
        "memory_size": [SIZE],
        "margin": [STRENGTH],
        "eps": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    # In a stack, the hooks run once per candidate (see Plugin).
    candidate_steps = ("after_backward", "after_step")

    def __init__(self, *, memory_size=256, margin=0.5, eps=1e-3):
        self.memory_size = memory_size
        self.margin = margin
        self.eps = eps

    def _memory_spec(self, net):
        return EpisodicMemory, {"per_task": self.memory_size}

    def memory_bytes(self, row_bytes, n_classes):
        """Return the bytes of one task's rows (the memory grows by as much a task)."""
        fields = ("X", "y", "tasks", "masks")
        return self.memory_size * sum(row_bytes[name] for name in fields)

    def initialize(self, net):
        super().initialize(net)
        self.n_projected_ = 0

    def task_gradients(self, net, params):
        """Return the gradients of the past tasks' memory losses, ``(T, P)``."""
        memory = self.memory_
        rows = memory.earlier().to(memory.X.device)
        tasks = memory.tasks.index_select(0, rows)
        gradients = []
        for task in tasks.unique().tolist():
            loss = self.replay_loss(net, rows[tasks == task])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            gradients.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if g is None else g).reshape(-1)
                        for p, g in zip(params, grads, strict=True)
                    ]
                )
            )
        return torch.stack(gradients)

    def after_backward(self, net, step):
        if self.memory_.n_stored == 0:
            return
        params = [p for p in net.module_.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        G = self.task_gradients(net, params)
        g = torch.cat([p.grad.reshape(-1) for p in params])
        if not bool((G @ g < 0).any()):
            return
        G64, g64 = G.double(), g.double()
        v = solve_dual(
            (G64 @ G64.T).cpu().numpy(),
            (G64 @ g64).cpu().numpy(),
            float(self.margin),
            float(self.eps),
        )
        projected = g64 + G64.T @ torch.from_numpy(v).to(G64.device)
        offsets = np.cumsum([0] + [p.numel() for p in params])
        for p, start, stop in zip(params, offsets[:-1], offsets[1:], strict=True):
            p.grad.copy_(projected[start:stop].view_as(p))
        self.n_projected_ += 1

    def after_step(self, net, step):
        self.remember(net, step)
