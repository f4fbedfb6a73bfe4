from abc import ABCMeta, abstractmethod

import torch

from ._quadratic import (
    QuadraticPenalty,
    check_number,
    check_parameter_list,
    trainable_parameters,
)


class ImportancePenalty(QuadraticPenalty, metaclass=ABCMeta):
    """Base of the quadratic penalties learnt from a per-task importance.

    The importance of a task (EWC's Fisher, MAS's output sensitivity) is
    measured on each of its chunks once the chunk is trained; the task's is
    their mean weighted by the chunks' sizes. When the task ends, the
    subclass folds it into its quadratic (:meth:`fold`). A subclass
    implements :meth:`importance` and :meth:`fold`, and calls
    ``super().initialize(net)`` if it overrides :meth:`initialize`.

    Attributes
    ----------
    task_importance_ : list of Tensor or None
        The current task's importance so far, one tensor per trainable
        parameter; None before its first chunk is consolidated.
    task_samples_ : int
        The number of samples it was measured on.

    Examples
    --------
    A pull toward the previous task's end, weighted by the parameters'
    magnitude then (for illustration):

    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import ImportancePenalty
    >>> class MagnitudeAnchor(ImportancePenalty):
    ...     def __init__(self, *, lam=1.0):
    ...         self.lam = lam
    ...     def initialize(self, net):
    ...         super().initialize(net)
    ...         self.weights_ = self.anchor_ = None
    ...     def importance(self, net, X, y):
    ...         return [p.detach().abs() for p in net.module_.parameters()]
    ...     def fold(self, net, importance):
    ...         self.weights_ = importance
    ...         self.anchor_ = [p.detach().clone() for p in net.module_.parameters()]
    ...     def quadratic(self, net):
    ...         if self.weights_ is not None:
    ...             return self.anchor_, self.weights_, 0.0
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(penalty=MagnitudeAnchor(), max_epochs=1)
    >>> clf.fit(X, y, task_id=np.repeat([0, 1], 20)).penalty_.weights_ is not None
    True
    """

    @abstractmethod
    def importance(self, net, X, y):
        """Return the importance measured on the chunk ``(X, y)``.

        Returns
        -------
        list of Tensor
            One tensor per trainable parameter, in order: a mean over ``X``.
        """

    @abstractmethod
    def fold(self, net, importance):
        """Fold the ended task's ``importance`` into the quadratic."""

    def initialize(self, net):
        self.task_importance_ = None
        self.task_samples_ = 0

    def check_state(self, net, X, y):
        """Also check the current task's importance (>= 0) and its sample count."""
        check_parameter_list(
            self.task_importance_, net, "task_importance_", nonnegative=True
        )
        check_number(self.task_samples_, "task_samples_", integral=True)
        if (self.task_importance_ is None) != (self.task_samples_ == 0):
            raise ValueError(
                "task_importance_ and task_samples_ disagree: an importance is "
                "measured on at least one sample."
            )
        super().check_state(net, X, y)

    def consolidate(self, net, X, y):
        new, n = self.importance(net, X, y), len(X)
        mean, count = self.task_importance_, self.task_samples_
        if mean is None:
            self.task_importance_ = [t.clone() for t in new]
        else:
            torch._foreach_mul_(mean, count / (count + n))
            torch._foreach_add_(mean, new, alpha=n / (count + n))
        self.task_samples_ = count + n

    @torch.no_grad()
    def end_task(self, net):
        if self.task_importance_ is None:
            return
        importance, self.task_importance_ = self.task_importance_, None
        self.task_samples_ = 0
        self.fold(net, importance)


def parameter_names(net):
    """Return the names of the trainable parameters, in order."""
    return [name for name, _ in trainable_parameters(net)]
