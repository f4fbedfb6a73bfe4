"""Task-incremental outputs: each task trains and predicts on its own classes."""

import numpy as np
import torch

from ._tasks import check_task_id, task_order


class _MultiHeadMixin:
    """Output masks of ``multi_head=True``, from the classes seen in each task."""

    def _initialize(self, X, n_outputs):
        super()._initialize(X, n_outputs)
        self.task_classes_ = {}

    def _task_output_mask(self, task, y):
        if not self.multi_head:
            return None
        seen = set(self.task_classes_.get(task, ())) | set(np.unique(y).tolist())
        self.task_classes_[task] = sorted(seen)
        mask = torch.zeros(len(self.classes_), dtype=torch.bool)
        mask[self.task_classes_[task]] = True
        return mask.to(self.net_.device)

    def _predict_output_mask(self, task_id, n_samples):
        if not self.multi_head or task_id is None:
            return None
        task_id = check_task_id(task_id, n_samples)
        mask = torch.zeros(n_samples, len(self.classes_), dtype=torch.bool)
        for task in task_order(task_id):
            if task not in self.task_classes_:
                raise ValueError(
                    f"task_id {task!r} was never trained; known tasks: {self.tasks_}."
                )
            rows = torch.as_tensor(task_id == task).nonzero()
            mask[rows, self.task_classes_[task]] = True
        return mask
