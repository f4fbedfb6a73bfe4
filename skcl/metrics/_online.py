"""Online accuracy: each training batch scored just before the network learns it."""

import numpy as np
import torch

from ..callbacks import PrequentialScore
from ..plasticity._diagnostics import network_diagnostics
from ._matrix import _unwrap


def prequential_scores(estimator):
    """The per-batch scores that an estimator's :class:`PrequentialScore` recorded.

    Parameters
    ----------
    estimator : estimator object
        A continual estimator fitted with a
        :class:`~skcl.callbacks.PrequentialScore` in its ``callbacks`` (or a
        pipeline or fitted search around one).

    Returns
    -------
    scores : ndarray of shape (n_batches,)
        The score of each training batch before its update, in training order.
    training_task : ndarray of shape (n_batches,)
        The index of the task each batch belongs to.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.callbacks import PrequentialScore
    >>> from skcl.metrics import prequential_scores
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(batch_size=10, max_epochs=1,
    ...                           callbacks=[PrequentialScore()])
    >>> scores, tasks = prequential_scores(clf.fit(X, y, task_id=np.repeat([0, 1], 20)))
    >>> tasks
    array([0, 0, 1, 1])
    """
    estimator, _ = _unwrap(estimator, None)
    net = getattr(estimator, "net_", None)
    found = [
        cb
        for _, cb in getattr(net, "callbacks_", ())
        if isinstance(cb, PrequentialScore)
    ]
    if not found:
        raise ValueError(
            "the estimator recorded no online scores: fit it with "
            "callbacks=[skcl.callbacks.PrequentialScore()]."
        )
    return np.asarray(found[0].scores_, dtype=float), np.asarray(
        found[0].training_task_
    )


def _check_scores(scores, training_task=None):
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1 or not len(scores) or not np.isfinite(scores).all():
        raise ValueError("scores must be a non-empty 1-D array of finite numbers.")
    if training_task is not None and np.shape(training_task) != scores.shape:
        raise ValueError(
            f"training_task has shape {np.shape(training_task)}; it needs one task "
            f"per score, {scores.shape}."
        )
    return scores


def online_accuracy(scores, training_task):
    """Average online accuracy of each task: the plasticity curve.

    The mean, over the training batches of each task, of the accuracy of
    each batch before the update on it (Kumar, Marklund & Van Roy,
    "Maintaining Plasticity in Continual Learning via Regenerative
    Regularization", CoLLAs 2025). A network that keeps its plasticity
    keeps it high on every new task.

    Parameters
    ----------
    scores : array-like of shape (n_batches,)
        The online accuracy of each batch, in training order (as
        :func:`prequential_scores` returns them).
    training_task : array-like of shape (n_batches,)
        The task of each batch.

    Returns
    -------
    accuracy : ndarray of shape (n_tasks,)
        Per task, in order of first appearance.

    Examples
    --------
    >>> from skcl.metrics import online_accuracy
    >>> online_accuracy([0.5, 1.0, 0.25, 0.75, 1.0], [0, 0, 1, 1, 1]).tolist()
    [0.75, 0.6666666666666666]
    """
    scores = _check_scores(scores, training_task)
    tasks = np.asarray(training_task)
    order = list(dict.fromkeys(tasks.tolist()))
    return np.array([scores[tasks == task].mean() for task in order])


def total_online_accuracy(scores):
    """Total average online accuracy: the mean over every training batch.

    The model-selection score of Kumar et al. (2025): high when the network
    learns every task quickly, whatever it forgets.

    Parameters
    ----------
    scores : array-like of shape (n_batches,)
        The online accuracy of each batch.

    Returns
    -------
    accuracy : float

    Examples
    --------
    >>> from skcl.metrics import total_online_accuracy
    >>> total_online_accuracy([0.5, 1.0, 0.25, 0.75, 1.0])
    0.7
    """
    return float(_check_scores(scores).mean())


class _OnlineScorer:
    """Scorer ``scorer(estimator, X=None, y=None)``: the total online accuracy
    recorded in training; the held-out data are not used."""

    def __repr__(self):
        return "online_scorer()"

    def __call__(self, estimator, X=None, y=None, **kwargs):
        scores, _ = prequential_scores(estimator)
        return total_online_accuracy(scores)


def online_scorer():
    """A scorer of the total online accuracy recorded while the estimator trained.

    For model selection as Kumar et al. (2025) select: called as
    ``scorer(estimator, X, y)``, it ignores the held-out data and returns
    :func:`total_online_accuracy` of the estimator's
    :class:`~skcl.callbacks.PrequentialScore` records (fit the candidates with
    ``callbacks=[PrequentialScore()]``).

    Returns
    -------
    scorer : callable

    Examples
    --------
    >>> from skcl.metrics import online_scorer
    >>> online_scorer()
    online_scorer()
    """
    return _OnlineScorer()


def plasticity_diagnostics(estimator, X, y=None, *, delta=0.01):
    """Why a fitted network may have stopped learning, measured on ``X``.

    The diagnostics of Kumar et al. (2025) on the inputs ``X`` (and targets
    ``y``), through the network's hidden layers with dropout off:

    - ``srank``: the effective rank (:func:`srank`) of the last hidden
      layer's features; a collapsing rank means features that no longer tell
      inputs apart;
    - ``dead_fraction``: the fraction of hidden features that are zero on
      every row (dead ReLUs get no gradient);
    - ``weight_magnitude``: the mean absolute parameter; growing weights
      saturate and slow learning;
    - ``gradient_norm`` (with ``y``): the L2 norm of the task loss's gradient
      on ``X``, ``y`` (the current task's outputs); near zero, nothing moves.

    Parameters
    ----------
    estimator : estimator object
        A fitted continual estimator on an :class:`~skcl.modules.MLP` or an
        ``nn.Sequential`` of linear layers and activations (or a pipeline or
        fitted search around one).
    X : array-like of shape (n_samples, n_features)
        The inputs, e.g. a batch of the last task.
    y : array-like of shape (n_samples,), default=None
        Their targets, for the gradient norm.
    delta : float, default=0.01
        The srank's threshold.

    Returns
    -------
    diagnostics : dict
        ``{"srank": int, "dead_fraction": float, "weight_magnitude": float}``
        and ``"gradient_norm": float`` with ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.metrics import plasticity_diagnostics
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(module__hidden_sizes=(8,), max_epochs=1).fit(X, y)
    >>> sorted(plasticity_diagnostics(clf, X, y))
    ['dead_fraction', 'gradient_norm', 'srank', 'weight_magnitude']
    """
    estimator, X = _unwrap(estimator, X)
    inputs, _ = estimator._forward_inputs(X)
    targets = None
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(inputs):
            raise ValueError(f"y has {len(y)} rows; X has {len(inputs)}.")
        if hasattr(estimator, "classes_"):
            if not np.isin(y, estimator.classes_).all():
                raise ValueError("y holds labels the estimator was not fitted on.")
            targets = torch.as_tensor(np.searchsorted(estimator.classes_, y))
        else:
            targets = torch.as_tensor(y, dtype=inputs.dtype).reshape(len(y), -1)
        targets = targets.to(inputs.device)
    return network_diagnostics(
        estimator.net_, inputs, targets, delta=delta, owner="plasticity_diagnostics"
    )
