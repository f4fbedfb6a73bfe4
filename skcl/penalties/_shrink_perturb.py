import copy

import torch

from .._constraints import PROBABILITY
from .._engine._random import drawing_globally
from ._base import Penalty


class ShrinkAndPerturb(Penalty):
    """Shrink the parameters and add fresh initialization noise at every step.

    After each optimizer step, ``theta <- (1 - shrink) * theta + noise *
    theta_fresh``, with ``theta_fresh`` a new random initialization of the
    network (Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS
    2020; the plasticity baseline of Kumar et al., 2023). It adds nothing to
    the loss: it shows that the penalty protocol also serves per-step
    interventions. Every parameterised submodule must define
    ``reset_parameters()`` (as torch's layers do), which draws the fresh
    initialization.

    Parameters
    ----------
    shrink : float, default=1e-4
        Fraction by which the parameters shrink at each step.
    noise : float, default=1e-4
        Scale of the fresh initialization added at each step.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import ShrinkAndPerturb
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(penalty=ShrinkAndPerturb(shrink=1e-3, noise=1e-3))
    >>> clf.fit(X, y).tasks_
    [0]
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "shrink": [PROBABILITY],
        "noise": [PROBABILITY],
    }

    # In a stack, the hook runs once per candidate (see Plugin).
    candidate_steps = ("after_step",)

    def __init__(self, *, shrink=1e-4, noise=1e-4):
        self.shrink = shrink
        self.noise = noise

    def initialize(self, net):
        self._fresh = copy.deepcopy(net.module_)
        self._resettable = []
        for module in self._fresh.modules():
            own = list(module.parameters(recurse=False))
            if not own:
                continue
            if not hasattr(module, "reset_parameters"):
                raise TypeError(
                    f"ShrinkAndPerturb needs reset_parameters() on every "
                    f"parameterised submodule; {type(module).__name__} has none."
                )
            self._resettable.append(module)

    def after_step(self, net, step):
        device = next((p.device for p in self._fresh.parameters()), None)
        # reset_parameters draws from torch's global generator.
        with torch.no_grad(), drawing_globally(net.generator_, device):
            for module in self._resettable:
                module.reset_parameters()
        with torch.no_grad():
            params = [p for p in net.module_.parameters() if p.requires_grad]
            fresh = [
                q
                for p, q in zip(
                    net.module_.parameters(), self._fresh.parameters(), strict=True
                )
                if p.requires_grad
            ]
            torch._foreach_mul_(params, 1 - self.shrink)
            torch._foreach_add_(params, fresh, alpha=self.noise)
