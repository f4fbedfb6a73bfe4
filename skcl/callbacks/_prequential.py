import warnings

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback


class PrequentialScore(Callback):
    """Score each incoming training batch before the network learns from it.

    The online (prequential) accuracy of a stream: for every training batch,
    the score of the training step's own forward pass, which predicts the
    batch before the step updates the network (as the reference code of Kumar
    et al. scores it; with dropout, as trained). Its mean per task measures
    plasticity, the ability to keep learning new tasks (Kumar et al.,
    "Maintaining Plasticity in Continual Learning via Regenerative
    Regularization", 2023). For a classifier it records the accuracy of the
    largest output (on the current task's outputs for a multi-head model), for
    a regressor the mean squared error, of the batch's own rows (not rows that
    a replay plug-in adds; rows an augmentation plug-in transforms, as
    trained). The training engine scores the steps (an argmax per batch, no
    extra forward pass) and this callback is the switch that records them:
    candidates that record it train stacked like any others.

    A classifier's network that stops learning is reported, once, by a
    warning: at the end of a chunk, when the current task's online accuracy
    is within 0.05 of chance (the share of the chunk's most frequent label)
    while an earlier task reached at least 0.2 more (see the user guide's
    "Losing the ability to learn").

    Parameters
    ----------
    warn : bool, default=True
        Whether to warn when the network stops learning.

    Attributes
    ----------
    scores_ : list of float
        The score of each training batch, in training order.
    training_task_ : list of int
        The index of the task each batch belongs to.
    warned_ : bool
        Whether the warning was given.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.callbacks import PrequentialScore
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = ContinualClassifier(batch_size=10, max_epochs=1,
    ...                           callbacks=[PrequentialScore()])
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> dict(clf.net_.callbacks_)["PrequentialScore"].task_means().shape
    (2,)
    """

    def __init__(self, *, warn=True):
        self.warn = warn

    def initialize(self):
        self.scores_ = []
        self.training_task_ = []
        self.warned_ = False
        return self

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if not self.warn or self.warned_ or not isinstance(net, NeuralNetClassifier):
            return
        means = self.task_means()
        tasks = np.unique(self.training_task_)
        current = means[tasks == net.task_index_]
        if not len(current) or len(means) < 2:
            return
        chance = float(torch.bincount(y).max()) / len(y)
        best = means[tasks != net.task_index_].max()
        if current[0] <= chance + 0.05 and best >= current[0] + 0.2:
            self.warned_ = True
            warnings.warn(
                f"the network stopped learning: task {net.task_index_}'s online "
                f"accuracy is {current[0]:.2f}, near chance ({chance:.2f}), while "
                f"an earlier task reached {best:.2f}. See the user guide's "
                "'Losing the ability to learn' (skcl.plasticity, L2Init, "
                "module__activation='crelu').",
                UserWarning,
                stacklevel=2,
            )

    def task_means(self):
        """Return the mean prequential score of each task, in training order.

        Returns
        -------
        ndarray of shape (n_tasks,)
        """
        tasks = np.asarray(self.training_task_)
        scores = np.asarray(self.scores_)
        return np.array([scores[tasks == k].mean() for k in np.unique(tasks)])
