import torch

from .._constraints import SIZE, STRENGTH, StrOptions
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


class ReDO(Plugin):
    """Recycle dormant units: re-initialize the hidden units that stopped firing.

    ReDO (Sokar et al., "The Dormant Neuron Phenomenon in Deep Reinforcement
    Learning", ICML 2023). Every ``period`` training steps, each hidden unit
    ``i`` of a layer is scored on the step's batch by ``s_i = E|h_i| /
    mean_k E|h_k|``, its mean absolute feature over the batch divided by the
    layer's mean of those; a unit is dormant if ``s_i <= tau``. A dormant
    unit's incoming weights and bias are re-initialized, its outgoing
    weights set to 0 (the network's outputs do not jump), and the
    optimizer's state of those weights (momentum, Adam's moments) reset.

    Choices where the paper leaves room (the reference code is
    google/dopamine's ``labs/redo/weight_recyclers.py``; the plasticity study
    of Kumar et al., 2023, uses a variant): the scores are those of the last
    mini-batch (the one just trained, through the network as that step left
    it, dropout off), not a running mean; ``reinit="random"`` draws the
    incoming weights and bias afresh from ``nn.Linear``'s default
    initialization ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as the reference
    redraws them, ``reinit="initial"`` puts back their values at the start
    of training (Kumar et al.'s variant); with ``reset_optimizer`` (the
    reference; Kumar et al. keep the state) the optimizer's per-entry state
    of the incoming and outgoing weights is reset through
    ``net.reset_optimizer_state``; step counts, per tensor in
    ``torch.optim``, stay. A LayerNorm's parameters are left as they are.
    Each pass draws a whole fresh layer, of which the dormant units take
    their rows, so that the random numbers drawn do not depend on the data.

    For networks whose hidden units it can find: :class:`skcl.modules.MLP`
    and ``nn.Sequential`` of ``Linear`` layers, each but the last followed by
    an optional ``LayerNorm``, an elementwise activation and an optional
    ``Dropout``; any other network is refused when training starts. It needs
    no task ids. In a stack of candidates it runs once per candidate.

    Parameters
    ----------
    tau : float, default=0.0
        Dormancy threshold on the normalized score: 0 recycles the units
        that are zero on the whole batch (dead ReLUs).
    period : int, default=1000
        Number of training steps between two recycling passes.
    reinit : {"random", "initial"}, default="random"
        Draw fresh incoming weights, or put back the initial ones.
    reset_optimizer : bool, default=True
        Reset the optimizer's state of the recycled weights.

    Attributes
    ----------
    n_steps_ : int
        Training steps taken since training started.
    n_recycled_ : list of int
        Per hidden layer, the number of units recycled so far.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.plasticity import ReDO
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> redo = ReDO(tau=0.1, period=5)
    >>> clf = ContinualClassifier(penalty=redo, batch_size=10, max_epochs=1)
    >>> clf.fit(X, y).penalty_.n_steps_
    10
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "tau": [STRENGTH],
        "period": [SIZE],
        "reinit": [StrOptions({"random", "initial"})],
        "reset_optimizer": ["boolean"],
    }

    # In a stack, the hook runs once per candidate (see Plugin).
    candidate_steps = ("after_step",)

    def __init__(self, *, tau=0.0, period=1000, reinit="random", reset_optimizer=True):
        self.tau = tau
        self.period = period
        self.reinit = reinit
        self.reset_optimizer = reset_optimizer

    def initialize(self, net):
        self._layers = layer_tuples(net, "ReDO")
        params = list(net.module_.parameters())
        self.initial_ = []
        if self.reinit == "initial":
            self.initial_ = [
                [params[i].detach().clone() for i in layer[:2] if i is not None]
                for layer in self._layers
            ]
        self.n_steps_ = 0
        self.n_recycled_ = [0] * len(self._layers)

    @torch.no_grad()
    def after_step(self, net, step):
        self.n_steps_ += 1
        if self.n_steps_ % self.period:
            return
        params = list(net.module_.parameters())
        features = hidden_features(self._layers, params, step.inputs)
        masks = [None] * len(params)
        for index, (layer, h) in enumerate(zip(self._layers, features, strict=True)):
            layer = HiddenLayer._make(layer)
            activity = h.abs().mean(0)
            scores = activity / activity.mean().clamp_min(torch.finfo(h.dtype).tiny)
            units = torch.nonzero(scores <= self.tau).flatten()
            self._recycle(net, layer, params, units, index)
            if len(units):
                masks = merge_masks(masks, unit_masks(layer, params, units))
        if self.reset_optimizer and any(m is not None for m in masks):
            net.reset_optimizer_state(masks)

    def _recycle(self, net, layer, params, units, index):
        if self.reinit == "random":
            generator = getattr(net, "generator_", None)
            draw_incoming(layer, params, units, generator, whole=True)
        else:
            targets = [i for i in (layer.weight, layer.bias) if i is not None]
            for i, initial in zip(targets, self.initial_[index], strict=True):
                params[i][units] = initial[units]
        params[layer.out_weight][:, units] = 0
        self.n_recycled_[index] += len(units)

    def check_state(self, net, X, y):
        super().check_state(net, X, y)
        check_units(self, net, ())
        params = list(net.module_.parameters())
        expected = [
            [tuple(params[i].shape) for i in layer[:2] if i is not None]
            for layer in self._layers
        ]
        shapes = [[tuple(t.shape) for t in pair] for pair in self.initial_]
        if shapes != (expected if self.reinit == "initial" else []):
            raise ValueError("initial_ does not hold the hidden layers' weights.")
        if self.n_steps_ < 0 or any(n < 0 for n in self.n_recycled_):
            raise ValueError("n_steps_ and n_recycled_ must be >= 0.")
