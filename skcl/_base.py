"""The continual estimators' core: a stream of task chunks, each a transaction."""

import contextlib
import copy
import inspect
import numbers
from collections.abc import Iterator

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn
from typing_extensions import Self

from ._data import _DataMixin
from ._engine._chunk import chunk_generators
from ._engine._random import drawing_globally
from ._engine._settings import ChunkSettings
from ._net import PluginTermDiverged
from ._params import ParamsMixin
from ._plugin import check_finite
from ._state import capture, interrupts_deferred, restore
from ._tasks import check_task_id, task_order
from .modules import MLP
from .penalties import QuadraticPenalty
from .penalties._implicit import check_implicit_optimizer

_MAX_SEED = np.iinfo(np.int32).max


class _SnapshotsMixin:
    """Parameter snapshots at initialization and at the end of every task."""

    def _state_copy(self):
        return {
            k: v.detach().to("cpu", copy=True)
            for k, v in self.module_.state_dict().items()
        }

    @contextlib.contextmanager
    def use_snapshot(self, index: int | str) -> Iterator[Self]:
        """Temporarily give the network the parameters of a snapshot.

        Inside the ``with`` block, predictions use the parameters the network
        had at the end of task ``tasks_[index]`` (or at initialization for
        ``index="initial"``); the current parameters come back on exit, also
        after an error. Training inside the block is refused.

        Parameters
        ----------
        index : int or "initial"
            Position in ``tasks_`` (negative values count from the end), or
            ``"initial"``.

        Yields
        ------
        self
        """
        check_is_fitted(self)
        if not self.keep_snapshots:
            raise ValueError(
                "No snapshots were kept: the estimator has keep_snapshots=False."
            )
        if isinstance(index, str) and index == "initial":
            snapshot = self.initial_snapshot_
        elif isinstance(index, numbers.Integral) and -len(
            self.snapshots_
        ) <= index < len(self.snapshots_):
            snapshot = self.snapshots_[index]
        else:
            raise IndexError(
                f"index must be 'initial' or an int in [-{len(self.snapshots_)}, "
                f"{len(self.snapshots_)}), got {index!r}."
            )
        current = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
        self.module_.load_state_dict(snapshot)
        self._snapshot_in_use = True
        # The plug-ins' infer answers with their state of that task.
        self._snapshot_index = (
            -1 if isinstance(index, str) else index % len(self.snapshots_)
        )
        try:
            yield self
        finally:
            del self._snapshot_in_use, self._snapshot_index
            self.module_.load_state_dict(current)

    def _keep_snapshot(self):
        if not self.keep_snapshots:
            return
        snapshot = self._state_copy()
        if len(self.snapshots_) < len(self.tasks_):
            self.snapshots_.append(snapshot)
        else:
            self.snapshots_[-1] = snapshot


class _ContinualEstimator(_DataMixin, _SnapshotsMixin, ParamsMixin):
    """Base of the continual estimators: task bookkeeping over one skorch net."""

    _net_class = None
    _criterion = None
    # The fitted attributes that validation takes from the data.
    _data_attributes = ("n_features_in_", "feature_names_in_", "input_shape_")
    # task_id is routed by default wherever metadata routing is enabled.
    __metadata_request__fit = {"task_id": True}  # noqa: RUF012
    __metadata_request__partial_fit = {"task_id": True}  # noqa: RUF012
    __metadata_request__score = {"task_id": True}  # noqa: RUF012

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
        **kwargs,
    ):
        self.module = module
        self.penalty = penalty
        self.replay = replay
        self.penalty_step = penalty_step
        self.lr = lr
        self.lr_decay = lr_decay
        self.min_lr = min_lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.optimizer = optimizer
        self.momentum = momentum
        self.reset_optimizer = reset_optimizer
        self.keep_snapshots = keep_snapshots
        self.callbacks = callbacks
        self.device = device
        self.verbose = verbose
        self.random_state = random_state
        vars(self).update(kwargs)

    # ------------------------------------------------------------------ training
    def fit(self, X: ArrayLike, y: ArrayLike, task_id: ArrayLike | None = None) -> Self:
        """Train from scratch on a stream of tasks.

        The tasks are trained one after the other in order of first appearance
        in ``task_id``, ``max_epochs`` epochs each, exactly as the equivalent
        sequence of :meth:`partial_fit` calls would.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        task_id : array-like of shape (n_samples,), int or str, default=None
            The task of each sample. None means a single task: the estimator
            is then a plain supervised model.

        Returns
        -------
        self
        """
        return self._fit(X, y, task_id, classes=None, reset=True)

    def _fit(self, X, y, task_id, classes, reset):
        """Validate the whole call, then train its tasks' chunks in order.

        Nothing changes until every input and parameter is valid. Each chunk
        is a transaction (:meth:`_train_task`); a call that starts from
        scratch and completes no task leaves the estimator as it was before
        the call (the previous model, or unfitted).
        """
        first, previous, chunks = self._start_fit(X, y, task_id, classes, reset)
        for i, (chunk, task) in enumerate(chunks):
            try:
                self._train_task(*chunk, task)
            except BaseException:
                if first and i == 0:
                    self._reinstate(previous)
                raise
        return self

    def _start_fit(self, X, y, task_id, classes, reset):
        """Validate a call and build the network if it starts anew.

        Returns whether it starts anew, the attributes before the call (to
        reinstate if it completes no task) and an iterator over the chunks
        ``((X, y, labels), task)``, in training order, tensors on the device.
        """
        if getattr(self, "_snapshot_in_use", False):
            raise RuntimeError(
                "Cannot train inside `with estimator.use_snapshot(...)`: the "
                "network holds a snapshot's parameters. Train after the block."
            )
        first = reset or not hasattr(self, "net_")
        previous = dict(vars(self))
        try:
            self._validate_params()
            if not first:
                self._check_frozen_params()
            X, y = self._validate_X(X, reset=first, y=y)
            y, n_outputs = self._encode_targets(
                y, classes, first=first, partial=not reset
            )
            self._check_replay_memory(X, n_outputs)
            task_id = check_task_id(task_id, X.shape[0])
            order = task_order(task_id)
            self._check_task_order(order, first)
            if first:
                self._initialize(X, n_outputs)
            self._check_penalty_step()
            X_all, y_all = (
                self._to_tensor(X),
                self._to_tensor(y, dtype=self._target_dtype),
            )
        except BaseException:
            self._reinstate(previous)
            raise
        return first, previous, _chunks(X_all, y_all, y, task_id, order)

    def _reinstate(self, attributes):
        with interrupts_deferred():
            vars(self).clear()
            vars(self).update(attributes)

    def _check_task_order(self, order, first):
        seen = [] if first else list(self.tasks_)
        for task in order:
            if task in seen[:-1]:
                raise ValueError(
                    f"Task {task!r} was already trained and closed; a closed task "
                    "cannot be trained again (tasks run in order of first appearance)."
                )
            if not seen or task != seen[-1]:
                seen.append(task)

    def _initialize(self, X, n_outputs):
        rng = check_random_state(self.random_state)
        self._rng = np.random.RandomState(rng.randint(_MAX_SEED))
        virtual = self._extra_params()
        module = self.module
        module_kwargs = {}
        if isinstance(module, nn.Module):
            module = copy.deepcopy(module)
        else:
            names = inspect.signature(module).parameters
            inferred = {
                "input_dim": int(np.prod(X.shape[1:])),
                "input_shape": tuple(X.shape[1:]),
                "output_dim": n_outputs,
            }
            module_kwargs = {
                f"module__{k}": v
                for k, v in inferred.items()
                if k in names and f"module__{k}" not in virtual
            }
        optimizer_kwargs = {}
        if "momentum" in inspect.signature(self.optimizer).parameters:
            optimizer_kwargs["optimizer__momentum"] = self.momentum
        net = self._net_class(
            module=module,
            criterion=self._criterion,
            optimizer=self.optimizer,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None,
            callbacks=copy.deepcopy(self.callbacks),
            device=self.device,
            verbose=self.verbose,
            **self._net_kwargs(),
            **{**module_kwargs, **optimizer_kwargs, **virtual},
        )
        generator = torch.Generator().manual_seed(self._rng.randint(_MAX_SEED))
        with drawing_globally(generator):  # torch's layers draw globally
            net.initialize()
        self.penalty_ = None
        penalties = [clone(p) for p in self._penalty_list()]
        if penalties:
            self.penalty_ = (
                penalties if isinstance(self.penalty, (list, tuple)) else penalties[0]
            )
        self.replay_ = None if self.replay is None else clone(self.replay)
        self.net_ = net
        self.tasks_ = []
        self.snapshots_ = []
        self.initial_snapshot_ = self._state_copy() if self.keep_snapshots else None
        self._built_with = self._frozen_params()
        with net.drawing_from(generator):
            net.initialize_stream(
                penalties if self.replay_ is None else [*penalties, self.replay_]
            )

    def _net_kwargs(self):
        return {}

    def _check_penalty_step(self):
        net = self.net_
        if self.penalty_step == "implicit" and any(
            isinstance(p, QuadraticPenalty) for p in net.plugins_
        ):
            check_implicit_optimizer(net.optimizer_)

    def _sync_plugins(self):
        """Give the fitted plug-ins the hyper-parameters set since."""
        for fitted, declared in zip(
            self.net_.plugins_, self._plugin_list(), strict=True
        ):
            fitted.set_params(**declared.get_params(deep=False))

    def _train_task(self, X, y, labels, task):
        """Train one chunk of one task; on any error, undo the whole chunk."""
        saved, grad = capture(self), torch.is_grad_enabled()
        try:
            self._train_task_unguarded(X, y, labels, task)
        except BaseException:
            with interrupts_deferred():
                restore(self, saved)
                # An interrupt inside a no_grad block's exit can leave it off.
                torch.set_grad_enabled(grad)
            raise

    def _train_task_unguarded(self, X, y, labels, task):
        seed, net = self._chunk_seed(), self.net_
        with chunk_generators([net], [seed], X, self.penalty_step):
            settings = self._open_chunk(labels, task)
            with self._divergence_reported(task):
                net.train_chunk(X, y, settings, torch.Generator().manual_seed(seed))
            net.consolidate(X, y, task)
        self._keep_snapshot()

    def _chunk_seed(self):
        """The seed of the next chunk's generators (its batch order and
        ``net_.generator_``), drawn from the estimator's own stream."""
        return self._rng.randint(_MAX_SEED)

    def _open_chunk(self, labels, task):
        """Open ``task`` if it is new; return the chunk's settings."""
        net = self.net_
        self._sync_plugins()
        if not self.tasks_ or task != self.tasks_[-1]:
            if self.tasks_:
                net.end_task()
            self.tasks_.append(task)
            net.begin_task(reset_optimizer=self.reset_optimizer)
        k = len(self.tasks_) - 1
        settings = ChunkSettings(
            epochs=self.max_epochs,
            batch_size=self.batch_size,
            lr=max(self.lr * self.lr_decay**k, self.min_lr),
            momentum=None if "optimizer__momentum" in vars(self) else self.momentum,
            penalty_step=self.penalty_step,
            output_mask=self._task_output_mask(task, labels),
        )
        return settings

    @contextlib.contextmanager
    def _divergence_reported(self, task):
        """Turn a FloatingPointError of training into one that says what to try."""
        try:
            yield
        except FloatingPointError as error:
            advice = "a lower learning rate (lr)"
            if isinstance(error, PluginTermDiverged):
                advice = f"a smaller strength of {error.plugins} or check its inputs"
            elif self.penalty_step == "explicit" and any(
                isinstance(p, QuadraticPenalty) for p in self.net_.plugins_
            ):
                advice += ", a smaller penalty strength or penalty_step='implicit'"
            raise FloatingPointError(
                f"Training diverged in task {task!r}: {error} The estimator was "
                f"restored to its state before this task's chunk; try {advice}."
            ) from error

    def _task_output_mask(self, task, y):
        return None

    def _check_state(self):
        """Raise ValueError, naming the attribute, unless the fitted state can work.

        For an estimator rebuilt from a file (:func:`skcl.load`):
        ``classes_`` sorted and distinct, ``tasks_`` distinct ints or
        strings, the network's weights, the optimizer's state and the
        snapshots finite. Each plug-in checks its own state
        (:meth:`skcl.Plugin.check_state`).
        """
        classes = getattr(self, "classes_", None)
        if classes is not None and not (
            isinstance(classes, np.ndarray)
            and classes.ndim == 1
            and len(classes)
            and np.array_equal(np.unique(classes), classes)
        ):
            raise ValueError("classes_ should hold sorted distinct labels.")
        tasks = self.tasks_
        if not all(
            isinstance(t, (numbers.Integral, str)) and not isinstance(t, bool)
            for t in tasks
        ) or len(set(tasks)) != len(tasks):
            raise ValueError(
                f"tasks_ should hold distinct ints or strings: {tasks!r:.200}"
            )
        finite = {
            "module_": self.module_.state_dict(),
            "optimizer_": self.net_.optimizer_.state_dict()["state"],
            "initial_snapshot_": self.initial_snapshot_,
            "snapshots_": self.snapshots_,
        }
        for name, value in finite.items():
            check_finite(value, name)

    @property
    def module_(self):
        """The trained network, ``net_.module_``."""
        return self.net_.module_

    def __setstate__(self, state):
        super().__setstate__(state)
        if "net_" in state:
            for plugin in self.net_.plugins_:
                plugin.to(self.net_.device)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _chunks(X_all, y_all, labels, task_id, order):
    """Yield ``((X, y, labels), task)`` for each task of ``order``."""
    for task in order:
        if len(order) == 1:
            yield (X_all, y_all, labels), task
            continue
        rows = task_id == task
        index = torch.as_tensor(rows).nonzero()[:, 0].to(X_all.device)
        yield (X_all[index], y_all[index], labels[rows]), task
