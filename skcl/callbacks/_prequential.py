import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback


class PrequentialScore(Callback):
    """Score each incoming training batch before the network learns from it.

    The online (prequential) accuracy of a stream: for every training batch,
    the network in eval mode predicts it just before the update. Its mean per
    task measures plasticity, the ability to keep learning new tasks (Kumar et
    al., "Maintaining Plasticity in Continual Learning via Regenerative
    Regularization", 2023). For a classifier it records the accuracy (on the
    current task's outputs for a multi-head model), for a regressor the mean
    squared error. It costs one extra forward pass per batch.

    Attributes
    ----------
    scores_ : list of float
        The score of each training batch, in training order.
    training_task_ : list of int
        The index of the task each batch belongs to.

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

    def initialize(self):
        self.scores_ = []
        self.training_task_ = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        X, y = batch
        module = net.module_
        module.eval()
        with torch.no_grad():
            out = net.infer_task(X)
            if isinstance(net, NeuralNetClassifier):
                score = (out.argmax(1) == y).double().mean()
            else:
                score = torch.nn.functional.mse_loss(out, y)
        module.train()
        self.scores_.append(score.item())
        self.training_task_.append(net.task_index_)

    def task_means(self):
        """Return the mean prequential score of each task, in training order.

        Returns
        -------
        ndarray of shape (n_tasks,)
        """
        tasks = np.asarray(self.training_task_)
        scores = np.asarray(self.scores_)
        return np.array([scores[tasks == k].mean() for k in np.unique(tasks)])
