"""Penalties that anchor a network to earlier parameters."""

from ._base import Penalty
from ._l2 import L2
from ._l2_init import L2Init
from ._quadratic import quadratic_penalty

__all__ = ["L2", "L2Init", "Penalty", "quadratic_penalty"]
