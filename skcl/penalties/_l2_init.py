from ._quadratic import QuadraticPenalty, check_parameter_list, detached_copy


class L2Init(QuadraticPenalty):
    """L2 pull toward the initial parameters (L2 Init).

    Adds ``lam/2 * ||theta - theta_0||^2`` at every step of every task, with
    ``theta_0`` the parameters at initialization. It keeps the network
    plastic over long streams (Kumar, Marklund & Van Roy, "Maintaining
    Plasticity in Continual Learning via Regenerative Regularization", 2023).

    Parameters
    ----------
    lam : float, default=1e-3
        Strength of the pull.

    Attributes
    ----------
    anchor_ : list of Tensor
        The initial parameters.

    Examples
    --------
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import L2Init
    >>> clf = ContinualClassifier(penalty=L2Init(lam=1e-2))
    >>> clf.get_params()["penalty__lam"]
    0.01
    """

    def __init__(self, *, lam=1e-3):
        self.lam = lam

    def initialize(self, net):
        self.anchor_ = detached_copy(net)

    def check_state(self, net, X, y):
        """Also check the anchor against the parameters."""
        if self.anchor_ is None:
            raise ValueError("anchor_ should hold the initial parameters, not None.")
        check_parameter_list(self.anchor_, net, "anchor_")
        super().check_state(net, X, y)

    def quadratic(self, net):
        return self.anchor_, None, 0.0
