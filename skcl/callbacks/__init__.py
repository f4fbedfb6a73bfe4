"""skorch callbacks that monitor a continual estimator while it trains."""

from ._plasticity_monitor import PlasticityMonitor
from ._prequential import PrequentialScore
from ._task_monitor import TaskMonitor

__all__ = ["PlasticityMonitor", "PrequentialScore", "TaskMonitor"]
