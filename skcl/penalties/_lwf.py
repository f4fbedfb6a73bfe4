import copy
import numbers

import torch
import torch.nn.functional as F

from .._constraints import STRENGTH, Interval
from ._base import Penalty


class LwF(Penalty):
    """Learning without forgetting: distil the previous task's network.

    Adds ``lam * T^2 * KL(softmax(z_old / T) || softmax(z / T))`` (mean over
    the rows) to each step's loss, ``z`` being the network's outputs on what
    the step trains on and ``z_old`` those of the network as it was at the
    end of the previous task, over the classes trained before the current
    task (Li & Hoiem, "Learning without Forgetting", ECCV 2016; the active
    classes as in Avalanche). It needs no memory and does nothing during the
    first task. The copy of the network (:attr:`teacher_`) predicts in eval
    mode. Classifier only: it distils class probabilities.

    Parameters
    ----------
    lam : float, default=1.0
        Weight of the distillation.
    temperature : float, default=2.0
        The softmax temperature ``T``.

    Attributes
    ----------
    teacher_ : torch.nn.Module
        The network at the end of the previous task (at initialization during
        the first task, unused then).
    old_classes_ : Tensor
        The indices of the classes trained before the current task.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import LwF
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 4
    >>> clf = ContinualClassifier(penalty=LwF(lam=1.0), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> clf.penalty_.old_classes_.tolist()
    [0, 1, 2, 3]
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "lam": [STRENGTH],
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    # In a stack, the term runs once per candidate (see Plugin).
    candidate_steps = ("loss",)

    def __init__(self, *, lam=1.0, temperature=2.0):
        self.lam = lam
        self.temperature = temperature

    def initialize(self, net):
        if not isinstance(net.criterion_, torch.nn.CrossEntropyLoss):
            raise TypeError(
                "LwF distils class probabilities: use it with ContinualClassifier."
            )
        self.teacher_ = copy.deepcopy(net.module_).eval().requires_grad_(False)
        device = next(net.module_.parameters()).device
        self.old_classes_ = torch.zeros(0, dtype=torch.long, device=device)
        self._task_classes = torch.zeros(0, dtype=torch.long, device=device)

    def check_state(self, net, X, y):
        """Also check that the classes distilled are distinct classes of ``net``."""
        n_classes = len(net.classes)
        for name in ("old_classes_", "_task_classes"):
            classes = getattr(self, name)
            if not (
                isinstance(classes, torch.Tensor)
                and classes.dtype == torch.long
                and classes.ndim == 1
                and bool((classes[1:] > classes[:-1]).all())
                and bool(((classes >= 0) & (classes < n_classes)).all())
            ):
                raise ValueError(
                    f"{name} should hold sorted distinct class indices in "
                    f"[0, {n_classes}) as an int64 tensor."
                )
        super().check_state(net, X, y)

    def consolidate(self, net, X, y):
        self._task_classes = torch.cat([self._task_classes, y]).unique()

    @torch.no_grad()
    def end_task(self, net):
        self.teacher_.load_state_dict(net.module_.state_dict())
        self.old_classes_ = torch.cat([self.old_classes_, self._task_classes]).unique()
        self._task_classes = self._task_classes[:0]

    def loss(self, net, step):
        if not len(self.old_classes_):
            return None
        with torch.no_grad():
            old = self.teacher_(step.inputs).index_select(1, self.old_classes_)
        new = step.logits.index_select(1, self.old_classes_)
        return self.lam * distillation(new, old, self.temperature)


def distillation(logits, teacher_logits, temperature):
    """Return ``T^2 * KL(softmax(teacher_logits / T) || softmax(logits / T))``,
    the mean over the rows (Hinton et al., 2015)."""
    T = temperature
    kl = F.kl_div(
        F.log_softmax(logits / T, dim=1),
        F.log_softmax(teacher_logits / T, dim=1),
        log_target=True,
        reduction="batchmean",
    )
    return T * T * kl
