"""Replay: strategies that keep a memory of the stream's samples.

A replay strategy plugs into a continual estimator's ``replay`` parameter
and composes with its ``penalty``. Subclass :class:`Replay` to write your
own; :class:`ReservoirMemory` and :class:`ClassBalancedMemory` are the
memories.
"""

from ._agem import AGEM
from ._base import Replay
from ._class_balanced import ClassBalancedMemory
from ._derpp import DERPP
from ._er import ER
from ._reservoir import ReservoirMemory

__all__ = [
    "AGEM",
    "DERPP",
    "ER",
    "ClassBalancedMemory",
    "Replay",
    "ReservoirMemory",
]
