import numbers

import torch

from .._constraints import PROBABILITY, Interval
from .._plugin import Plugin
from ._units import (
    HiddenLayer,
    check_units,
    draw_incoming,
    hidden_features,
    layer_tuples,
    merge_masks,
    unit_masks,
)


class ContinualBackprop(Plugin):
    """Continual Backprop: replace a small fraction of low-utility units each step.

    Continual Backprop (Dohare et al., "Loss of plasticity in deep continual
    learning", Nature 2024; reference code shibhansh/loss-of-plasticity
    ``lop/algos/gnt.py``). After every training step, each hidden unit's
    utility, a running mean of its contribution to the next layer,

        ``u <- decay * u + (1 - decay) * mean|h| * sum_k |w_out,k|``,

    and its mean feature ``f <- decay * f + (1 - decay) * mean h`` are
    updated over the step's batch; both are bias-corrected by the unit's age
    (``u / (1 - decay ** age)``). Each layer accumulates ``rho`` times its
    number of units older than ``maturity`` steps; every whole unit of it
    replaces the eligible unit of lowest corrected utility: the next layer's
    bias absorbs the unit's mean contribution (``w_out * f / (1 - decay **
    age)``), its outgoing weights are set to 0, its incoming weights drawn
    afresh from ``nn.Linear``'s default initialization ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))``, its incoming bias set to 0, its age, utility and mean
    feature to 0, and the optimizer's per-entry state of its weights
    (momentum, Adam's moments) reset through ``net.reset_optimizer_state``.

    Choices where the paper leaves room: the features are those of the
    step's batch through the network as the step left it (dropout off; one
    extra forward pass of the hidden layers per step; the reference reuses
    the training forward's); the contribution sums the outgoing weights'
    magnitudes (the reference averages them: the same ranking within a
    layer); the count accumulates across steps (the reference's
    ``accumulate=True``), so no random draw decides it; ties go to the
    lower unit index. The reference resets the next bias's absorbed mean
    after zeroing it (so it absorbs nothing): here it absorbs the mean, as
    the paper describes. ``torch.optim`` keeps one step count per tensor,
    which stays (the reference's own Adam keeps one per entry).

    For :class:`skcl.modules.MLP` and ``nn.Sequential`` networks as
    :class:`ReDO` describes. It needs no task ids. In a stack of candidates
    it runs once per candidate.

    Parameters
    ----------
    rho : float, default=1e-4
        Replacement rate: the fraction of eligible units replaced per step.
    maturity : int, default=100
        Number of steps a unit lives before it can be replaced.
    decay : float, default=0.99
        Decay of the running utility and mean feature.

    Attributes
    ----------
    ages_ : list of Tensor
        Per hidden layer, each unit's age in steps.
    utilities_ : list of Tensor
        Per hidden layer, each unit's running utility (not bias-corrected).
    mean_features_ : list of Tensor
        Per hidden layer, each unit's running mean feature (not corrected).
    pending_ : list of float
        Per hidden layer, the fraction of a unit accumulated for replacement.
    n_replaced_ : list of int
        Per hidden layer, the number of units replaced so far.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.plasticity import ContinualBackprop
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(200, 4)), np.arange(200) % 2
    >>> cbp = ContinualBackprop(rho=0.05, maturity=5)
    >>> clf = ContinualClassifier(penalty=cbp, batch_size=10, max_epochs=2)
    >>> clf.fit(X, y).penalty_.n_replaced_
    [142]
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "rho": [PROBABILITY],
        "maturity": [Interval(numbers.Integral, 0, None, closed="left")],
        "decay": [Interval(numbers.Real, 0, 1, closed="left")],
    }

    # In a stack, the hook runs once per candidate (see Plugin).
    candidate_steps = ("after_step",)

    def __init__(self, *, rho=1e-4, maturity=100, decay=0.99):
        self.rho = rho
        self.maturity = maturity
        self.decay = decay

    def initialize(self, net):
        self._layers = layer_tuples(net, "ContinualBackprop")
        params = list(net.module_.parameters())
        widths = [params[layer[0]] for layer in self._layers]
        self.ages_ = [
            torch.zeros(len(w), dtype=torch.long, device=w.device) for w in widths
        ]
        self.utilities_ = [w.new_zeros(len(w)) for w in widths]
        self.mean_features_ = [w.new_zeros(len(w)) for w in widths]
        self.pending_ = [0.0] * len(widths)
        self.n_replaced_ = [0] * len(widths)

    @torch.no_grad()
    def after_step(self, net, step):
        params = list(net.module_.parameters())
        features = hidden_features(self._layers, params, step.inputs)
        eta, masks = self.decay, [None] * len(params)
        for index, (layer, h) in enumerate(zip(self._layers, features, strict=True)):
            layer = HiddenLayer._make(layer)
            out = params[layer.out_weight]
            age = self.ages_[index].add_(1)
            contribution = h.abs().mean(0) * out.abs().sum(0)
            utility = self.utilities_[index].mul_(eta).add_(contribution, alpha=1 - eta)
            mean = self.mean_features_[index].mul_(eta).add_(h.mean(0), alpha=1 - eta)
            correction = 1 - eta ** age.to(h.dtype)
            eligible = torch.nonzero(age > self.maturity).flatten()
            self.pending_[index] += self.rho * len(eligible)
            count = int(self.pending_[index])
            self.pending_[index] -= count
            if not count:
                continue
            lowest = torch.argsort((utility / correction)[eligible], stable=True)
            units = eligible[lowest[:count]]
            if layer.out_bias is not None:
                params[layer.out_bias].add_(out[:, units] @ (mean / correction)[units])
            out[:, units] = 0
            generator = getattr(net, "generator_", None)
            draw_incoming(layer, params, units, generator, draw_bias=False)
            for state in (age, utility, mean):
                state[units] = 0
            self.n_replaced_[index] += len(units)
            masks = merge_masks(masks, unit_masks(layer, params, units))
        if any(m is not None for m in masks):
            net.reset_optimizer_state(masks)

    def check_state(self, net, X, y):
        super().check_state(net, X, y)
        check_units(
            self,
            net,
            ("ages_", "utilities_", "mean_features_"),
            nonnegative=("ages_", "utilities_"),
        )
        counts = [*self.pending_, *self.n_replaced_]
        if len(counts) != 2 * len(self._layers) or any(c < 0 for c in counts):
            raise ValueError("pending_ and n_replaced_ need one value >= 0 per layer.")
