"""Penalties that anchor a network to earlier parameters.

A penalty plugs into a continual estimator's ``penalty`` parameter; a list of
penalties adds their terms. Subclass :class:`Penalty` to write your own.
"""

from ._base import Penalty
from ._ewc import EWC
from ._fisher import squared_gradients
from ._importance import ImportancePenalty
from ._l2 import L2
from ._l2_init import L2Init
from ._lwf import LwF
from ._mas import MAS
from ._output_norm import output_norm_gradients
from ._quadratic import QuadraticPenalty, quadratic_penalty
from ._shrink_perturb import ShrinkAndPerturb
from ._si import SI

__all__ = [
    "EWC",
    "L2",
    "MAS",
    "ImportancePenalty",
    "LwF",
    "SI",
    "L2Init",
    "Penalty",
    "QuadraticPenalty",
    "ShrinkAndPerturb",
    "output_norm_gradients",
    "quadratic_penalty",
    "squared_gradients",
]
