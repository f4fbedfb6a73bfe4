import numbers

import numpy as np
import torch
from sklearn.metrics import r2_score
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

from .._tasks import task_order


class TaskMonitor(Callback):
    """Record the score and loss on every held-out task during training.

    A skorch callback for the ``callbacks`` of a continual estimator: every
    epoch, or every ``every`` batches, it scores the network on the held-out
    samples of each task (accuracy for a classifier, R² for a regressor, from
    all outputs) and records their loss. This draws the classic picture of the
    loss on an early task during the whole stream, e.g. naive training against
    a penalty; :meth:`skcl.metrics.TaskAccuracyDisplay.from_monitor` plots it.

    The trained callback is in the estimator's ``net_``:
    ``dict(clf.net_.callbacks_)["TaskMonitor"]``.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Held-out inputs.
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Their targets.
    task_id : array-like of shape (n_samples,)
        Their tasks.
    every : "epoch" or int, default="epoch"
        Record at the end of every epoch, or every ``every`` training batches.

    Attributes
    ----------
    tasks_ : list
        The held-out tasks, in order of first appearance (the columns).
    steps_ : list of int
        Training batches done at each record.
    training_task_ : list of int
        Index of the task being trained at each record.
    scores_ : list of ndarray of shape (n_tasks,)
        Score on each held-out task at each record.
    losses_ : list of ndarray of shape (n_tasks,)
        Mean loss on each held-out task at each record.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.callbacks import TaskMonitor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> task = np.repeat([0, 1], 50)
    >>> clf = ContinualClassifier(max_epochs=2, callbacks=[TaskMonitor(X, y, task)])
    >>> clf = clf.fit(X, y, task_id=task)
    >>> np.shape(dict(clf.net_.callbacks_)["TaskMonitor"].scores_)
    (4, 2)
    """

    def __init__(self, X, y, task_id, *, every="epoch"):
        self.X = X
        self.y = y
        self.task_id = task_id
        self.every = every

    def initialize(self):
        if not (
            (isinstance(self.every, str) and self.every == "epoch")
            or (isinstance(self.every, numbers.Integral) and self.every >= 1)
        ):
            raise ValueError(
                f"every must be 'epoch' or an int >= 1, got {self.every!r}."
            )
        task_id = np.asarray(self.task_id)
        if task_id.shape != (len(self.y),) or len(self.X) != len(self.y):
            raise ValueError("X, y and task_id must have one entry per sample.")
        self.tasks_ = task_order(task_id)
        self.steps_, self.training_task_, self.scores_, self.losses_ = [], [], [], []
        self._n_batches = 0
        self._data = None
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        self._n_batches += 1
        if self.every != "epoch" and self._n_batches % self.every == 0:
            self._record(net)

    def on_epoch_end(self, net, **kwargs):
        if self.every == "epoch":
            self._record(net)

    def _held_out(self, net):
        if self._data is None:
            classifier = isinstance(net, NeuralNetClassifier)
            dtype = next(net.module_.parameters()).dtype
            task_id, y = np.asarray(self.task_id), np.asarray(self.y)
            self._data = []
            for task in self.tasks_:
                rows = task_id == task
                X = torch.as_tensor(np.asarray(self.X)[rows], dtype=dtype)
                if classifier:
                    classes = np.asarray(net.classes)
                    unknown = np.setdiff1d(y[rows], classes)
                    if unknown.size:
                        raise ValueError(
                            f"TaskMonitor: y holds labels {unknown.tolist()} that "
                            f"are not among the classes {classes.tolist()}."
                        )
                    target = torch.as_tensor(np.searchsorted(classes, y[rows]))
                else:
                    target = torch.as_tensor(y[rows], dtype=dtype)
                    target = target.reshape(len(target), -1)
                self._data.append((X.to(net.device), target.to(net.device), y[rows]))
        return self._data

    def _record(self, net):
        module = net.module_
        training = module.training
        module.eval()
        scores, losses = [], []
        with torch.no_grad():
            for X, target, y in self._held_out(net):
                out = module(X)
                losses.append(net.criterion_(out, target).item())
                if isinstance(net, NeuralNetClassifier):
                    scores.append((out.argmax(1) == target).double().mean().item())
                else:
                    scores.append(r2_score(y, out.cpu().numpy().reshape(y.shape)))
        module.train(training)
        self.steps_.append(self._n_batches)
        self.training_task_.append(net.task_index_)
        self.scores_.append(np.array(scores))
        self.losses_.append(np.array(losses))
