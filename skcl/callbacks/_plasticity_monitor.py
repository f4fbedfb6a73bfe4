import numbers

from skorch.callbacks import Callback

from ..plasticity._diagnostics import network_diagnostics


class PlasticityMonitor(Callback):
    """Record why the network may stop learning, at the end of every chunk.

    After each chunk of training (each task in ``fit``, each ``partial_fit``
    call), it measures on the chunk's first ``n_samples`` rows what
    :func:`skcl.metrics.plasticity_diagnostics` measures: the effective rank
    of the last hidden layer's features, the fraction of dead hidden
    features, the mean absolute parameter and the norm of the task loss's
    gradient. It costs one forward and backward pass on those rows and one
    SVD per chunk, a fraction of a single epoch: cheap to leave on. It does
    not act at every batch, so training keeps its fastest path. For an
    :class:`~skcl.modules.MLP` or an ``nn.Sequential`` of linear layers and
    activations.

    The trained callback is in the estimator's ``net_``:
    ``dict(clf.net_.callbacks_)["PlasticityMonitor"]``.

    Parameters
    ----------
    n_samples : int, default=256
        Rows of each chunk measured.
    delta : float, default=0.01
        The srank's threshold.

    Attributes
    ----------
    training_task_ : list of int
        The index of the task of each record.
    srank_, dead_fraction_, weight_magnitude_, gradient_norm_ : list
        One value per record.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.callbacks import PlasticityMonitor
    >>> X, y = np.random.RandomState(0).normal(size=(60, 3)), np.arange(60) % 2
    >>> clf = ContinualClassifier(max_epochs=1, callbacks=[PlasticityMonitor()])
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1, 2], 20))
    >>> dict(clf.net_.callbacks_)["PlasticityMonitor"].training_task_
    [0, 1, 2]
    """

    def __init__(self, *, n_samples=256, delta=0.01):
        self.n_samples = n_samples
        self.delta = delta

    def initialize(self):
        if not isinstance(self.n_samples, numbers.Integral) or self.n_samples < 1:
            raise ValueError(f"n_samples must be an int >= 1, got {self.n_samples!r}.")
        if not isinstance(self.delta, numbers.Real) or not 0 <= self.delta < 1:
            raise ValueError(f"delta must be in [0, 1), got {self.delta!r}.")
        self.training_task_ = []
        self.srank_ = []
        self.dead_fraction_ = []
        self.weight_magnitude_ = []
        self.gradient_norm_ = []
        return self

    def on_train_end(self, net, X=None, y=None, **kwargs):
        rows = slice(0, self.n_samples)
        found = network_diagnostics(
            net, X[rows], y[rows], delta=self.delta, owner="PlasticityMonitor"
        )
        self.training_task_.append(net.task_index_)
        for name, value in found.items():
            getattr(self, f"{name}_").append(value)
