"""Task-id helpers shared by the estimators, metrics, callbacks and splitters."""

import numpy as np


def task_order(task_id):
    """Return the distinct ids of a 1-d ``task_id`` array in order of first appearance.

    The ids come back as Python ints or strings.
    """
    _, first = np.unique(task_id, return_index=True)
    return task_id[np.sort(first)].tolist()
