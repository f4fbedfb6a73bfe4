from ._quadratic import QuadraticPenalty, check_parameter_list, detached_copy


class L2(QuadraticPenalty):
    """L2 pull toward the parameters at the end of the previous task.

    Adds ``lam/2 * ||theta - theta_{k-1}||^2`` while training task ``k > 0``,
    with ``theta_{k-1}`` the parameters when task ``k - 1`` ended: the classic
    L2 baseline of continual learning (e.g. Kirkpatrick et al., 2017, Fig. 2).

    Parameters
    ----------
    lam : float, default=1.0
        Strength of the pull.

    Attributes
    ----------
    anchor_ : list of Tensor or None
        The parameters at the end of the previous task; None during the first.

    Examples
    --------
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import L2
    >>> clf = ContinualClassifier(penalty=L2(lam=0.1))
    >>> clf.set_params(penalty__lam=10.0).penalty
    L2(lam=10.0)
    """

    def __init__(self, *, lam=1.0):
        self.lam = lam

    def initialize(self, net):
        self.anchor_ = None

    def check_state(self, net, X, y):
        """Also check the anchor against the parameters."""
        check_parameter_list(self.anchor_, net, "anchor_")
        super().check_state(net, X, y)

    def end_task(self, net):
        self.anchor_ = detached_copy(net)

    def quadratic(self, net):
        return None if self.anchor_ is None else (self.anchor_, None, 0.0)
