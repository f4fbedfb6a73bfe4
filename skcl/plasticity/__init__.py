"""Plug-ins that keep a network able to learn: re-initialize unused units.

They go in an estimator's ``penalty`` parameter (alone or in a list with
penalties) and need no task ids. See the user guide's "Losing the ability
to learn".
"""

from ._continual_backprop import ContinualBackprop
from ._redo import ReDO

__all__ = ["ContinualBackprop", "ReDO"]
