"""The penalties' base class."""

from .._plugin import Plugin


class Penalty(Plugin):
    """Base class of the penalties that anchor a network to earlier parameters.

    A penalty is a :class:`skcl.Plugin` that changes the objective: its
    :meth:`loss` is added to the task loss at every step (or, for a
    :class:`QuadraticPenalty`, its quadratic is applied by the optimizer's
    step), and its state is learnt at the task boundaries. The plug-in
    protocol lists the hooks and when they are called; a list of penalties
    adds their terms.

    Examples
    --------
    A penalty on the squared output-layer weights, for illustration:

    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import Penalty
    >>> class OutputWeightDecay(Penalty):
    ...     def __init__(self, *, lam=1e-3):
    ...         self.lam = lam
    ...     def loss(self, net, step):
    ...         weight = list(net.module_.parameters())[-2]
    ...         return self.lam * weight.square().sum()
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(penalty=OutputWeightDecay(), max_epochs=1)
    >>> clf.fit(X, y).set_params(penalty__lam=0.1).penalty
    OutputWeightDecay(lam=0.1)
    """

    # Constraints on the parameters, checked at every fit and partial_fit (see
    # skcl._constraints); a subclass extends its parent's.
    _parameter_constraints: dict = {}  # noqa: RUF012
