"""skorch callbacks that monitor a continual estimator while it trains."""

from ._prequential import PrequentialScore
from ._task_monitor import TaskMonitor

__all__ = ["PrequentialScore", "TaskMonitor"]
