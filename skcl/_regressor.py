from types import MappingProxyType

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from typing_extensions import Self

from ._base import _ContinualEstimator
from ._net import _RegressorNet
from .modules import MLP


class ContinualRegressor(RegressorMixin, _ContinualEstimator):
    """Neural-network regressor that learns a stream of tasks.

    A scikit-learn estimator around a skorch :class:`~skorch.NeuralNetRegressor`
    (``net_``), trained with the mean squared error; ``y`` may have one or
    several targets. Tasks arrive through :meth:`partial_fit` or :meth:`fit`
    exactly as for :class:`ContinualClassifier`, whose parameters it shares
    (without ``classes`` and ``multi_head``); ``output_dim`` is the number of
    targets.

    Parameters
    ----------
    module : type or instance of torch.nn.Module, default=skcl.modules.MLP
        The network; see :class:`ContinualClassifier`.
    penalty : Penalty, list of Penalty or None, default=None
        Terms anchoring the network to earlier parameters.
    replay : Replay or None, default=None
        A memory of earlier tasks' samples that training replays
        (:class:`skcl.replay.ER`, :class:`skcl.replay.AGEM` or
        :class:`skcl.replay.DERPP`).
    penalty_step : {"implicit", "explicit"}, default="implicit"
        How the quadratic penalties enter each step: an exact proximal step
        that never diverges, or their gradient added to the task loss's (see
        :class:`ContinualClassifier`).
    lr : float, default=0.001
        Learning rate of the first task (lower than the classifier's: squared
        errors on unscaled targets give large gradients).
    lr_decay : float, default=1.0
        Task ``k`` trains at ``max(lr * lr_decay**k, min_lr)``.
    min_lr : float, default=0.0
        Floor of the decayed learning rate.
    batch_size : int, default=32
        Mini-batch size.
    max_epochs : int, default=10
        Epochs over each chunk of each task.
    optimizer : type of torch.optim.Optimizer, default=torch.optim.SGD
        Its other arguments go as ``optimizer__*``.
    momentum : float, default=0.9
        Passed to optimizers that take a ``momentum`` argument.
    reset_optimizer : bool, default=False
        Whether the optimizer state is reset when a task starts.
    keep_snapshots : bool, default=True
        Keep CPU copies of the parameters at initialization and after each task.
    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks, deep-copied into ``net_``.
    device : str or torch.device, default="cpu"
        Where the network trains.
    verbose : int, default=0
        skorch's per-epoch log when positive.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling, dropout and the plug-ins' draws,
        from the estimator's own generators; as in
        :class:`ContinualClassifier`.
    **kwargs
        ``module__*``, ``optimizer__*``, ``criterion__*`` and ``callbacks__*``
        arguments, routed as in skorch.

    Attributes
    ----------
    tasks_ : list
        The task ids seen, in training order.
    snapshots_ : list of dict
        One ``state_dict`` (CPU tensors) per entry of ``tasks_``.
    initial_snapshot_ : dict or None
        The ``state_dict`` at initialization.
    penalty_ : Penalty, list of Penalty or None
        The fitted penalties.
    replay_ : Replay or None
        The fitted replay strategy.
    net_ : skorch.NeuralNetRegressor
        The inner skorch net.
    module_ : torch.nn.Module
        The trained network.
    n_outputs_ : int
        Number of targets.
    n_features_in_ : int
        Number of features.
    input_shape_ : tuple
        Shape of one sample.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> reg = ContinualRegressor(max_epochs=30, random_state=0)
    >>> reg.fit(X, y, task_id=np.repeat(["a", "b"], 100)).tasks_
    ['a', 'b']
    >>> reg.score(X, y) > 0.9
    True
    """

    _net_class = _RegressorNet
    _criterion = torch.nn.MSELoss
    _target_dtype = None
    _y_validation = MappingProxyType({"multi_output": True, "y_numeric": True})
    _data_attributes = (*_ContinualEstimator._data_attributes, "n_outputs_", "_y_1d")

    def __init__(
        self,
        *,
        module=MLP,
        penalty=None,
        replay=None,
        penalty_step="implicit",
        lr=0.001,
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

    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, task_id: ArrayLike | None = None
    ) -> Self:
        """Train ``max_epochs`` epochs on a chunk of the stream.

        Calls with the same ``task_id`` continue a task; a new ``task_id``
        first closes the previous task.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        task_id : int, str or array-like of shape (n_samples,), default=None
            The task of this chunk. None continues the current task.

        Returns
        -------
        self
        """
        if task_id is None and getattr(self, "tasks_", None):
            task_id = self.tasks_[-1]
        return self._fit(X, y, task_id, classes=None, reset=False)

    def _encode_targets(self, y, classes, *, first, partial):
        y = np.asarray(y, dtype=np.float64)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self.n_outputs_ = n_outputs
            self._y_1d = y.ndim == 1
        elif n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {n_outputs} targets, but ContinualRegressor was trained on "
                f"{self.n_outputs_}."
            )
        return y.reshape(len(y), n_outputs), n_outputs

    def _n_outputs(self):
        return self.n_outputs_

    def predict(self, X: ArrayLike, task_id: ArrayLike | None = None) -> np.ndarray:
        """Return the predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Inputs.
        task_id : int, str or array-like of shape (n_samples,), default=None
            Accepted for symmetry with the classifier; not used.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        out = self._forward(X).numpy()
        return out.ravel() if self._y_1d else out

    def score(
        self,
        X: ArrayLike,
        y: ArrayLike,
        task_id: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> float:
        """Return the coefficient of determination R² on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            True targets.
        task_id : int, str or array-like of shape (n_samples,), default=None
            Passed to :meth:`predict`.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        float
        """
        return r2_score(
            y, self.predict(X, task_id=task_id), sample_weight=sample_weight
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
