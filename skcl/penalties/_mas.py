from .._constraints import PROBABILITY, SIZE
from ._importance import ImportancePenalty, parameter_names
from ._output_norm import output_norm_gradients
from ._quadratic import check_parameter_list, detached_copy, output_mask_transform


class MAS(ImportancePenalty):
    """Memory aware synapses: importance from the output's sensitivity.

    The importance of a parameter is the mean over a task's samples of the
    absolute per-sample gradient of the squared L2 norm of the network's
    output, which needs no labels (Aljundi et al., "Memory Aware Synapses:
    Learning what (not) to forget", ECCV 2018). Across tasks it accumulates as
    ``Omega <- alpha * Omega + (1 - alpha) * Omega_new`` (the first task's
    importance is taken whole), and later tasks train with
    ``lam/2 * sum_j Omega_j (theta_j - theta*_j)^2`` toward the parameters at
    the end of the previous task.

    Parameters
    ----------
    lam : float, default=1.0
        Strength of the penalty.
    alpha : float, default=0.5
        Weight of the accumulated importance against the new task's.
    batch_size : int, default=1024
        Chunk size of the importance computation (memory only).

    Attributes
    ----------
    importance_ : list of Tensor or None
        The accumulated importance, one tensor per parameter.
    anchor_ : list of Tensor or None
        The parameters at the end of the previous task.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import MAS
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(penalty=MAS(lam=1.0), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> clf.penalty_.importance_ is not None
    True
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **ImportancePenalty._parameter_constraints,
        "alpha": [PROBABILITY],
        "batch_size": [SIZE],
    }

    def __init__(self, *, lam=1.0, alpha=0.5, batch_size=1024):
        self.lam = lam
        self.alpha = alpha
        self.batch_size = batch_size

    def initialize(self, net):
        super().initialize(net)
        self.importance_ = None
        self.anchor_ = None

    def check_state(self, net, X, y):
        """Also check the importance (>= 0) and the anchor."""
        check_parameter_list(self.importance_, net, "importance_", nonnegative=True)
        check_parameter_list(self.anchor_, net, "anchor_")
        if (self.importance_ is None) != (self.anchor_ is None):
            raise ValueError("importance_ and anchor_ must be both set or both None.")
        super().check_state(net, X, y)

    def importance(self, net, X, y):
        importance = output_norm_gradients(
            net.module_,
            X,
            batch_size=self.batch_size,
            output_transform=output_mask_transform(net),
        )
        return [importance[name] for name in parameter_names(net)]

    def fold(self, net, new):
        if self.importance_ is None:
            self.importance_ = [t.clone() for t in new]
        else:
            self.importance_ = [
                self.alpha * old + (1 - self.alpha) * n
                for old, n in zip(self.importance_, new, strict=True)
            ]
        self.anchor_ = detached_copy(net)

    def quadratic(self, net):
        if self.importance_ is None:
            return None
        return self.anchor_, self.importance_, 0.0
