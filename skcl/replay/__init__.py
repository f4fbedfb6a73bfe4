"""Replay: strategies that keep a memory of the stream's samples.

A replay strategy plugs into a continual estimator's ``replay`` parameter
and composes with its ``penalty``. Subclass :class:`Replay` to write your
own; :class:`ReservoirMemory`, :class:`ClassBalancedMemory`,
:class:`EpisodicMemory` and :class:`GreedyMemory` are the memories.
"""

from ._agem import AGEM
from ._base import Replay
from ._bic import BiC
from ._class_balanced import ClassBalancedMemory
from ._der import DER
from ._derpp import DERPP
from ._episodic import EpisodicMemory
from ._er import ER
from ._erace import ERACE
from ._gdumb import GDumb
from ._gem import GEM
from ._greedy import GreedyMemory
from ._icarl import ICaRL
from ._reservoir import ReservoirMemory

__all__ = [
    "AGEM",
    "BiC",
    "DER",
    "DERPP",
    "ER",
    "ICaRL",
    "ERACE",
    "GDumb",
    "GEM",
    "ClassBalancedMemory",
    "EpisodicMemory",
    "GreedyMemory",
    "Replay",
    "ReservoirMemory",
]
