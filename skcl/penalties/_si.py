import numbers

import torch

from .._constraints import Interval
from ._quadratic import (
    QuadraticPenalty,
    check_parameter_list,
    detached_copy,
    trainable_parameters,
)


class SI(QuadraticPenalty):
    """Synaptic intelligence: importance from each parameter's path integral.

    During a task, every optimizer step adds ``-g * delta_theta`` to each
    parameter's path integral ``omega``, with ``g`` the gradient of the task
    loss (Zenke, Poole & Ganguli, "Continual Learning Through Synaptic
    Intelligence", ICML 2017). When the task ends, the importance grows by
    ``omega / (Delta^2 + xi)``, ``Delta`` being the parameter's total change
    over the task, and is clipped at zero; later tasks then train with
    ``lam/2 * sum_j Omega_j (theta_j - theta*_j)^2`` toward the parameters
    ``theta*`` at the end of the previous task.

    The path integral uses the gradient of the **task loss only**, as the
    authors' code does: the importance should credit a parameter for reducing
    the task's loss, not for the pull of the penalties themselves (which
    would inflate the importance of parameters held in place). The estimator
    therefore backpropagates the task loss and the penalties separately when
    SI is used (see :meth:`after_task_backward`; the quadratic penalties'
    gradients are added after it).

    Parameters
    ----------
    lam : float, default=1.0
        Strength of the penalty.
    xi : float, default=1e-3
        Damping of the importance denominator.

    Attributes
    ----------
    importance_ : list of Tensor or None
        The accumulated importance ``Omega``, one tensor per parameter.
    anchor_ : list of Tensor or None
        The parameters at the end of the previous task.
    omega_ : list of Tensor
        The current task's path integral.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import SI
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(penalty=SI(lam=1.0), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> len(clf.penalty_.importance_) == len(list(clf.module_.parameters()))
    True
    """

    # after_task_backward and after_step act elementwise: see Plugin.
    stackable_steps = ("after_task_backward", "after_step")

    _parameter_constraints: dict = {  # noqa: RUF012
        **QuadraticPenalty._parameter_constraints,
        # The damping keeps omega / (Delta^2 + xi) finite for an unmoved parameter.
        "xi": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(self, *, lam=1.0, xi=1e-3):
        self.lam = lam
        self.xi = xi

    def initialize(self, net):
        self.importance_ = None
        self.anchor_ = None

    def check_state(self, net, X, y):
        """Also check the importance (>= 0), the anchor and the path integrals."""
        check_parameter_list(self.importance_, net, "importance_", nonnegative=True)
        check_parameter_list(self.anchor_, net, "anchor_")
        if (self.importance_ is None) != (self.anchor_ is None):
            raise ValueError("importance_ and anchor_ must be both set or both None.")
        for name in ("omega_", "_start", "_previous", "_grads"):
            check_parameter_list(getattr(self, name, None), net, name)
        super().check_state(net, X, y)

    @torch.no_grad()
    def begin_task(self, net):
        params = [p.detach() for _, p in trainable_parameters(net)]
        self._start = detached_copy(net)
        self._previous = detached_copy(net)
        self.omega_ = [torch.zeros_like(p) for p in params]
        self._grads = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def end_task(self, net):
        params = [p.detach() for _, p in trainable_parameters(net)]
        delta = torch._foreach_sub(params, self._start)
        new = [
            w / (d.square() + self.xi) for w, d in zip(self.omega_, delta, strict=True)
        ]
        if self.importance_ is not None:
            torch._foreach_add_(new, self.importance_)
        self.importance_ = [t.clamp_min(0) for t in new]
        self.anchor_ = detached_copy(net)

    def after_task_backward(self, net, step):
        """Keep the task loss's gradient, before the penalties add theirs."""
        for buffer, (_, p) in zip(self._grads, trainable_parameters(net), strict=True):
            if p.grad is None:
                buffer.zero_()
            else:
                buffer.copy_(p.grad)

    def after_step(self, net, step):
        params = [p.detach() for _, p in trainable_parameters(net)]
        # previous <- previous - theta = -delta; omega += g * (-delta)
        torch._foreach_sub_(self._previous, params)
        torch._foreach_addcmul_(self.omega_, self._grads, self._previous)
        torch._foreach_copy_(self._previous, params)

    def quadratic(self, net):
        if self.importance_ is None:
            return None
        return self.anchor_, self.importance_, 0.0
