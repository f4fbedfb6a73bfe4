"""Metrics of continual learning: the accuracy matrix, its summaries, scorers, plots.

``R[t, i]`` is the score on task ``i`` after training task ``t`` (0-based, tasks in
training order); :func:`accuracy_matrix` computes it from a fitted estimator's
per-task snapshots and held-out data.
"""

from ..plasticity._diagnostics import srank
from ._functions import (
    average_accuracy,
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    learning_accuracy,
    one_step_backward_transfer,
)
from ._matrix import accuracy_matrix, initial_scores
from ._online import (
    online_accuracy,
    online_scorer,
    plasticity_diagnostics,
    prequential_scores,
    total_online_accuracy,
)
from ._plot.accuracy_matrix import AccuracyMatrixDisplay
from ._plot.online_accuracy import OnlineAccuracyDisplay
from ._plot.task_accuracy import TaskAccuracyDisplay
from ._scorer import (
    MissingTaskIdError,
    get_continual_scorer,
    get_continual_scorer_names,
    make_continual_scorer,
)

__all__ = [
    "AccuracyMatrixDisplay",
    "MissingTaskIdError",
    "OnlineAccuracyDisplay",
    "TaskAccuracyDisplay",
    "accuracy_matrix",
    "average_accuracy",
    "average_incremental_accuracy",
    "backward_transfer",
    "forgetting",
    "forward_transfer",
    "get_continual_scorer",
    "get_continual_scorer_names",
    "initial_scores",
    "learning_accuracy",
    "make_continual_scorer",
    "one_step_backward_transfer",
    "online_accuracy",
    "online_scorer",
    "plasticity_diagnostics",
    "prequential_scores",
    "srank",
    "total_online_accuracy",
]
