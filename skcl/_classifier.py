from types import MappingProxyType

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets
from typing_extensions import Self

from ._base import _ContinualEstimator
from ._multi_head import _MultiHeadMixin
from ._net import _ClassifierNet
from .modules import MLP


class ContinualClassifier(ClassifierMixin, _MultiHeadMixin, _ContinualEstimator):
    """Neural-network classifier that learns a stream of tasks.

    A scikit-learn estimator around a skorch :class:`~skorch.NeuralNetClassifier`
    (``net_``). The module outputs logits, trained with cross-entropy;
    :meth:`predict_proba` is their softmax. Tasks arrive through
    :meth:`partial_fit` (one chunk at a time) or :meth:`fit` (a whole stream);
    when a new task starts, the previous one is closed: the penalties
    consolidate, its parameter snapshot is kept and the learning rate decays.

    Parameters
    ----------
    module : type or instance of torch.nn.Module, default=skcl.modules.MLP
        The network. For a class, ``module__*`` arguments are passed to it, and
        the arguments ``input_dim`` (number of features), ``input_shape``
        (shape of one sample) and ``output_dim`` (number of classes) are
        inferred from the data when the class takes them and they are not
        given. An instance is deep-copied at the start of training, so every
        ``fit`` starts from the same weights.
    penalty : Penalty, list of Penalty or None, default=None
        Terms anchoring the network to earlier parameters, e.g.
        :class:`skcl.penalties.L2`; a list adds its terms. Their parameters are
        reachable as ``penalty__lam`` (or ``penalty__0__lam`` for a list).
    replay : Replay or None, default=None
        A memory of earlier tasks' samples that training replays, e.g.
        :class:`skcl.replay.ER`; it composes with the penalties. Its
        parameters are reachable as ``replay__memory_size``.
    penalty_step : {"implicit", "explicit"}, default="implicit"
        How the quadratic penalties (all the built-in ones but
        shrink-and-perturb) enter each step. ``"implicit"``: after the
        optimizer's step on the task loss, an exact proximal step, which never
        diverges whatever the strength (SGD with any momentum, Nesterov or
        dampening; Adam, AdamW, RMSprop and Adagrad with their per-coordinate
        step size; other optimizers are refused). ``"explicit"``: the
        penalties' gradient is added to the task loss's, as in most papers'
        code; stable only while ``lr * lam * importance < 2 (1 + momentum)``.
    lr : float, default=0.01
        Learning rate of the first task.
    lr_decay : float, default=1.0
        Per-task decay: task ``k`` (0-based) trains at
        ``max(lr * lr_decay**k, min_lr)``.
    min_lr : float, default=0.0
        Floor of the decayed learning rate.
    batch_size : int, default=32
        Mini-batch size.
    max_epochs : int, default=10
        Epochs over each chunk of each task (per :meth:`partial_fit` call).
    optimizer : type of torch.optim.Optimizer, default=torch.optim.SGD
        Its other arguments go as ``optimizer__*``.
    momentum : float, default=0.9
        Passed to optimizers that take a ``momentum`` argument (SGD, RMSprop);
        ignored by the others.
    reset_optimizer : bool, default=False
        Whether the optimizer state (e.g. momentum buffers) is reset when a
        task starts.
    keep_snapshots : bool, default=True
        Keep a CPU copy of the parameters at initialization and at the end of
        every task (``initial_snapshot_``, ``snapshots_``), from which the
        accuracy matrix is computed. Switch off for very large models.
    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks; they are deep-copied into ``net_``, whose
        ``callbacks_`` holds the trained ones.
    device : str or torch.device, default="cpu"
        Where the network trains, e.g. ``"cuda"``.
    verbose : int, default=0
        skorch's per-epoch log when positive.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialization, the shuffling, dropout and the
        plug-ins' draws, so that two fits with an int give identical
        predictions on the CPU. The estimator draws from its own
        generators, never from torch's global one: fits in threads equal
        the same fits in turn. A module that draws from the global
        generator by itself (dropout outside the batched kernels of MLPs and
        ``nn.Sequential``, ``torch.rand`` in ``forward``) trains under a
        process-wide lock, with the global generator forked and seeded from
        the estimator's (see ``docs/reliability.md``).
    classes : array-like or None, default=None
        All the classes of the stream. If None, ``fit`` takes the classes in
        ``y`` and the first ``partial_fit`` call needs ``classes``.
    multi_head : bool, default=False
        Task-incremental outputs: each task only uses the outputs of the
        classes seen in that task, in training and in ``predict(X, task_id=...)``.
    **kwargs
        ``module__*``, ``optimizer__*``, ``criterion__*`` and ``callbacks__*``
        arguments, routed as in skorch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    tasks_ : list
        The task ids seen, in training order.
    snapshots_ : list of dict
        One ``state_dict`` (CPU tensors) per entry of ``tasks_``, taken at the
        end of that task; the last one is the current state.
    initial_snapshot_ : dict or None
        The ``state_dict`` at initialization.
    task_classes_ : dict
        The class indices seen in each task.
    penalty_ : Penalty, list of Penalty or None
        The fitted penalties (clones of ``penalty``) with their state.
    replay_ : Replay or None
        The fitted replay strategy (a clone of ``replay``) with its memory.
    net_ : skorch.NeuralNetClassifier
        The inner skorch net (history, callbacks, optimizer).
    module_ : torch.nn.Module
        The trained network.
    n_features_in_ : int
        Number of features (size of axis 1 of ``X``).
    input_shape_ : tuple
        Shape of one sample.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import L2
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> task = np.repeat([0, 1], 100)
    >>> clf = ContinualClassifier(penalty=L2(lam=0.1), random_state=0)
    >>> clf.fit(X, y, task_id=task).tasks_
    [0, 1]
    >>> clf.score(X, y) > 0.9
    True
    """

    _net_class = _ClassifierNet
    _criterion = torch.nn.CrossEntropyLoss
    _target_dtype = torch.long
    _y_validation = MappingProxyType({})
    _data_attributes = (*_ContinualEstimator._data_attributes, "classes_")
    _parameter_constraints: dict = {  # noqa: RUF012
        **_ContinualEstimator._parameter_constraints,
        "classes": ["array-like", None],
        "multi_head": ["boolean"],
    }

    def __init__(
        self,
        *,
        module=MLP,
        penalty=None,
        replay=None,
        penalty_step="implicit",
        lr=0.01,
        lr_decay=1.0,
        min_lr=0.0,
        batch_size=32,
        max_epochs=10,
        optimizer=torch.optim.SGD,
        momentum=0.9,
        reset_optimizer=False,
        keep_snapshots=True,
        callbacks=None,
        device="cpu",
        verbose=0,
        random_state=None,
        classes=None,
        multi_head=False,
        **kwargs,
    ):
        super().__init__(
            module=module,
            penalty=penalty,
            replay=replay,
            penalty_step=penalty_step,
            lr=lr,
            lr_decay=lr_decay,
            min_lr=min_lr,
            batch_size=batch_size,
            max_epochs=max_epochs,
            optimizer=optimizer,
            momentum=momentum,
            reset_optimizer=reset_optimizer,
            keep_snapshots=keep_snapshots,
            callbacks=callbacks,
            device=device,
            verbose=verbose,
            random_state=random_state,
            **kwargs,
        )
        self.classes = classes
        self.multi_head = multi_head

    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        task_id: ArrayLike | None = None,
        classes: ArrayLike | None = None,
    ) -> Self:
        """Train ``max_epochs`` epochs on a chunk of the stream.

        Calls with the same ``task_id`` continue a task; a new ``task_id``
        first closes the previous task. If ``task_id`` holds several tasks,
        they are trained in order of first appearance.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,)
            Labels.
        task_id : int, str or array-like of shape (n_samples,), default=None
            The task of this chunk. None continues the current task (the
            first task is then ``0``).
        classes : array-like of shape (n_classes,), default=None
            All the classes of the stream; required on the first call unless
            the estimator was given ``classes``. Later calls may repeat them
            (the same set, in any order) or pass None; other classes are
            refused, as by scikit-learn's ``partial_fit``.

        Returns
        -------
        self
        """
        if task_id is None and getattr(self, "tasks_", None):
            task_id = self.tasks_[-1]
        return self._fit(X, y, task_id, classes=classes, reset=False)

    def _encode_targets(self, y, classes, *, first, partial):
        if first:
            check_classification_targets(y)
            declared = classes if classes is not None else self.classes
            if declared is None and partial:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit "
                    "(or given to the constructor): every label of the stream, not "
                    f"only this chunk's {_shown(np.unique(y))}, e.g. "
                    "partial_fit(X, y, task_id=..., classes=np.arange(10)) or "
                    "ContinualClassifier(classes=[...])."
                )
            self.classes_ = np.unique(y if declared is None else np.asarray(declared))
        elif classes is not None and not _same_classes(classes, self.classes_):
            # As scikit-learn's partial_fit (_check_partial_fit_first_call).
            raise ValueError(
                f"classes={_shown(classes)} is not the same as on the first call "
                f"to partial_fit, classes_={_shown(self.classes_)}: the network "
                "has one output per class, fixed on the first call. Pass the same "
                "classes or none, or train anew with every label declared: "
                "ContinualClassifier(classes=[...]), or classes=[...] on the first "
                "call to partial_fit."
            )
        try:
            index = np.searchsorted(self.classes_, y)
        except TypeError as error:
            raise TypeError(
                f"y contains labels that cannot be compared with classes_ "
                f"{self.classes_.tolist()}: {error}"
            ) from error
        index[index == len(self.classes_)] = 0
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels {_shown(np.unique(y[unknown]))} that are not in "
                f"classes_ {_shown(self.classes_)}: the network has one output per "
                "class, fixed when training starts. Declare every label of the "
                "stream up front, with classes=[...] on the first call to "
                "partial_fit or ContinualClassifier(classes=[...]) (which fit "
                "uses too), and train anew."
            )
        return index, len(self.classes_)

    def _net_kwargs(self):
        return {"classes": self.classes_}

    def _n_outputs(self):
        return len(self.classes_)

    def predict_proba(
        self, X: ArrayLike, task_id: ArrayLike | None = None
    ) -> np.ndarray:
        """Return class probabilities, the softmax of the network's logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Inputs.
        task_id : int, str or array-like of shape (n_samples,), default=None
            With ``multi_head=True``, restricts each sample to the classes of
            its task; ignored otherwise.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return torch.softmax(self._forward(X, task_id), dim=1).numpy()

    def predict(self, X: ArrayLike, task_id: ArrayLike | None = None) -> np.ndarray:
        """Return the most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Inputs.
        task_id : int, str or array-like of shape (n_samples,), default=None
            With ``multi_head=True``, restricts each sample to the classes of
            its task; ignored otherwise.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        index = self._forward(X, task_id).argmax(dim=1).numpy()
        return self.classes_[index]

    def score(
        self,
        X: ArrayLike,
        y: ArrayLike,
        task_id: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> float:
        """Return the accuracy on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,)
            True labels.
        task_id : int, str or array-like of shape (n_samples,), default=None
            Passed to :meth:`predict`.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        float
        """
        return accuracy_score(
            y, self.predict(X, task_id=task_id), sample_weight=sample_weight
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


def _shown(labels, limit=20):
    """``labels`` as a list, cut to its first ``limit`` for a message."""
    labels = np.ravel(labels).tolist()
    return labels if len(labels) <= limit else f"[{str(labels[:limit])[1:-1]}, ...]"


def _same_classes(classes, fitted):
    """Whether ``classes`` holds exactly the classes ``fitted`` (any order)."""
    try:
        given = np.unique(np.asarray(classes))
    except TypeError:  # labels that cannot be compared
        return False
    return given.shape == fitted.shape and bool(np.all(given == fitted))
