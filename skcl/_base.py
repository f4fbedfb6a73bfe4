"""Machinery shared by ContinualClassifier and ContinualRegressor."""

import contextlib
import copy
import inspect
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import sparse
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from typing_extensions import Self

from ._tasks import task_order
from .modules import MLP
from .penalties import Penalty, QuadraticPenalty
from .penalties._base import _map_tensors
from .penalties._implicit import check_implicit_optimizer

_VIRTUAL_PREFIXES = ("module__", "optimizer__", "criterion__", "callbacks__")
_MAX_SEED = np.iinfo(np.int32).max
_PREDICT_BATCH = 256


def _check_task_id(task_id, n_samples, name="task_id"):
    """Return ``task_id`` as a 1-d array of ``n_samples`` ints or strings."""
    try:
        scalar = task_id is None or np.ndim(task_id) == 0
    except ValueError as error:  # ragged nested lists
        raise ValueError(
            f"{name} must be a scalar or have one entry per sample: {error}"
        ) from error
    if scalar:
        task = 0 if task_id is None else task_id
        if not isinstance(task, (numbers.Integral, str, np.str_)) or isinstance(
            task, bool
        ):
            raise TypeError(f"{name} must be an int or a str, got {task!r}.")
        return np.full(n_samples, task, dtype=object if isinstance(task, str) else int)
    array = np.asarray(task_id)
    if array.ndim != 1 or len(array) != n_samples:
        raise ValueError(
            f"{name} must be a scalar or have one entry per sample: got shape "
            f"{array.shape} for {n_samples} samples."
        )
    if array.dtype.kind not in "iuUO":
        raise TypeError(f"{name} must hold ints or strings, got dtype {array.dtype}.")
    if array.dtype.kind == "U" and not isinstance(task_id, np.ndarray):
        array = np.asarray(task_id, dtype=object)  # numpy turns [0, "a"] into strings
    if array.dtype.kind == "O":
        if not all(
            isinstance(t, (numbers.Integral, str)) and not isinstance(t, bool)
            for t in array
        ):
            raise TypeError(f"{name} must hold ints or strings only.")
        if len({isinstance(t, str) for t in array}) > 1:
            raise TypeError(f"{name} must hold ints or strings, not both.")
    return array


def _penalty_keys(penalties):
    """Return the keys of each listed penalty: its index and its name.

    The name is the lowercase class name, suffixed ``-1``, ``-2``, ... when
    several penalties share it, as in :func:`sklearn.pipeline.make_pipeline`.
    """
    names = [type(p).__name__.lower() for p in penalties]
    counts = {n: names.count(n) for n in names}
    seen = dict.fromkeys(names, 0)
    keys = []
    for i, name in enumerate(names):
        if counts[name] > 1:
            seen[name] += 1
            name = f"{name}-{seen[name]}"
        keys.append((str(i), name))
    return keys


def _check_finite_state(penalty, task):
    """Raise FloatingPointError if a tensor of ``penalty``'s state is not finite."""
    for name, value in vars(penalty).items():
        tensors = []
        _map_tensors(value, tensors.append)
        if any(
            isinstance(t, torch.Tensor)
            and t.is_floating_point()
            and not torch.isfinite(t).all()
            for t in tensors
        ):
            raise FloatingPointError(
                f"{type(penalty).__name__}'s {name.strip('_') or name} is not finite "
                f"after training on task {task!r}: an input of extreme magnitude "
                "(near the float32 limit) can make an importance overflow; rescale "
                "the inputs. The estimator was restored to its state before this "
                "task's chunk."
            )


class _ContinualEstimator(BaseEstimator):
    """Base of the continual estimators: parameters, task bookkeeping, snapshots."""

    _net_class = None
    _criterion = None
    # task_id is routed by default wherever metadata routing is enabled.
    __metadata_request__fit = {"task_id": True}  # noqa: RUF012
    __metadata_request__partial_fit = {"task_id": True}  # noqa: RUF012
    __metadata_request__score = {"task_id": True}  # noqa: RUF012

    def __init__(
        self,
        *,
        module=MLP,
        penalty=None,
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

    # ---------------------------------------------------------------- parameters
    def _extra_params(self):
        """Return the ``**kwargs`` parameters, e.g. ``module__dropout``."""
        declared = self._get_param_names()
        return {
            k: v
            for k, v in vars(self).items()
            if k not in declared and not k.startswith("_") and not k.endswith("_")
        }

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)
        params.update(self._extra_params())
        if deep and isinstance(self.penalty, (list, tuple)):
            for keys, penalty in zip(
                _penalty_keys(self.penalty), self.penalty, strict=True
            ):
                for key in keys:
                    params[f"penalty__{key}"] = penalty
                    if isinstance(penalty, Penalty):
                        params.update(
                            (f"penalty__{key}__{k}", v)
                            for k, v in penalty.get_params().items()
                        )
        return params

    def set_params(self, **params: Any) -> Self:
        if "penalty" in params:
            self.penalty = params.pop("penalty")
        declared = self._get_param_names()
        for key in list(params):
            if key.startswith(_VIRTUAL_PREFIXES) or (
                "__" not in key and key not in declared
            ):
                # Like the constructor, store now and validate at fit.
                setattr(self, key, params.pop(key))
            elif key.startswith("penalty__") and isinstance(
                self.penalty, (list, tuple)
            ):
                self._set_listed_penalty(key, params.pop(key))
        return super().set_params(**params) if params else self

    def _set_listed_penalty(self, key, value):
        """Set ``penalty__<index or name>[__param]`` in a list of penalties."""
        ref, _, name = key[len("penalty__") :].partition("__")
        found = [i for i, keys in enumerate(_penalty_keys(self.penalty)) if ref in keys]
        if not found:
            raise ValueError(
                f"Invalid parameter {key!r}: no penalty {ref!r}; the penalties are "
                f"{_penalty_keys(self.penalty)}."
            )
        if name:
            self.penalty[found[0]].set_params(**{name: value})
        else:
            penalties = list(self.penalty)
            penalties[found[0]] = value
            self.penalty = penalties

    def _penalty_list(self):
        if self.penalty is None:
            return []
        return (
            list(self.penalty)
            if isinstance(self.penalty, (list, tuple))
            else [self.penalty]
        )

    def _validate_params(self):
        unknown = [
            k for k in self._extra_params() if not k.startswith(_VIRTUAL_PREFIXES)
        ]
        if unknown:
            raise TypeError(
                f"Unexpected parameters {unknown}; extra parameters must start "
                f"with one of {_VIRTUAL_PREFIXES}."
            )

        def check(name, ok, expected):
            if not ok:
                raise ValueError(
                    f"{name} must be {expected}, got {getattr(self, name)!r}."
                )

        def positive_int(value):
            return isinstance(value, numbers.Integral) and value >= 1

        def real(value):
            return isinstance(value, numbers.Real) and np.isfinite(value)

        check("lr", real(self.lr) and self.lr > 0, "a positive float")
        check("lr_decay", real(self.lr_decay) and self.lr_decay > 0, "a positive float")
        check("min_lr", real(self.min_lr) and self.min_lr >= 0, "a float >= 0")
        check("batch_size", positive_int(self.batch_size), "an int >= 1")
        check("max_epochs", positive_int(self.max_epochs), "an int >= 1")
        check("momentum", real(self.momentum) and self.momentum >= 0, "a float >= 0")
        self._check_penalty_step()
        for name in ("reset_optimizer", "keep_snapshots"):
            check(name, isinstance(getattr(self, name), bool), "a bool")
        check(
            "module",
            isinstance(self.module, nn.Module)
            or (isinstance(self.module, type) and issubclass(self.module, nn.Module)),
            "a torch.nn.Module class or instance",
        )
        check(
            "optimizer",
            isinstance(self.optimizer, type)
            and issubclass(self.optimizer, torch.optim.Optimizer),
            "a torch.optim.Optimizer class",
        )
        if not all(isinstance(p, Penalty) for p in self._penalty_list()):
            raise TypeError(
                "penalty must be None, a skcl.penalties.Penalty or a list of them, "
                f"got {self.penalty!r}."
            )

    def _check_penalty_step(self):
        if not (
            isinstance(self.penalty_step, str)
            and self.penalty_step in ("implicit", "explicit")
        ):
            raise ValueError(
                "penalty_step must be 'implicit' or 'explicit', got "
                f"{self.penalty_step!r}."
            )
        if hasattr(self, "net_") and self.penalty_step == "implicit":
            if any(isinstance(p, QuadraticPenalty) for p in self.net_.penalties_):
                check_implicit_optimizer(self.net_.optimizer_)

    # -------------------------------------------------------------- validation
    @contextlib.contextmanager
    def _unchanged_on_error(self):
        """Undo all attribute changes if the block raises."""
        state = dict(vars(self))
        try:
            yield
        except BaseException:
            vars(self).clear()
            vars(self).update(state)
            raise

    def _validate_X(self, X, *, reset, y="no_validation"):
        kwargs = dict(
            accept_sparse=("csr", "csc", "coo"),
            allow_nd=True,
            dtype=(np.float32, np.float64),
            reset=reset,
        )
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, **kwargs, **self._y_validation)
        if reset:
            self.input_shape_ = X.shape[1:]
        elif X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} "
                f"was trained on samples of shape {self.input_shape_}."
            )
        return X, y

    def _to_tensor(self, array, dtype=None):
        if sparse.issparse(array):
            array = array.toarray()
        array = np.asarray(array)
        if not array.flags.writeable:
            array = array.copy()
        if dtype is None:
            dtype = next(self.module_.parameters()).dtype
        tensor = torch.as_tensor(array, dtype=dtype)
        if (
            tensor.is_floating_point()
            and array.dtype.itemsize > tensor.element_size()
            and not torch.isfinite(tensor).all()
        ):
            raise ValueError(
                f"The input holds values too large for the network's dtype {dtype} "
                f"(largest {torch.finfo(dtype).max:.3g})."
            )
        return tensor.to(self.net_.device)

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
        first = reset or not hasattr(self, "net_")
        with self._unchanged_on_error():
            if first:
                self._validate_params()
            X, y = self._validate_X(X, reset=first, y=y)
            y, n_outputs = self._encode_targets(
                y, classes, first=first, partial=not reset
            )
            task_id = _check_task_id(task_id, X.shape[0])
            order = task_order(task_id)
            self._check_task_order(order, first)
            if first:
                self._initialize(X, n_outputs)
            self._check_penalty_step()
        if len(order) == 1:
            self._train_task(X, y, order[0])
            return self
        for task in order:
            rows = task_id == task
            self._train_task(X[rows], y[rows], task)
        return self

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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._rng.randint(_MAX_SEED))
            net.initialize()
        penalties = [clone(p) for p in self._penalty_list()]
        self.penalty_ = (
            penalties
            if isinstance(self.penalty, (list, tuple))
            else (penalties[0] if penalties else None)
        )
        net.penalties_ = penalties
        net.task_index_ = -1
        net.output_mask_ = None
        self.net_ = net
        self.tasks_ = []
        self.snapshots_ = []
        self.initial_snapshot_ = self._state_copy() if self.keep_snapshots else None
        for penalty in penalties:
            penalty.initialize(net)

    def _net_kwargs(self):
        return {}

    def _begin_task(self, task):
        net = self.net_
        k = len(self.tasks_)
        self.tasks_.append(task)
        net.task_index_ = k
        if k > 0 and self.reset_optimizer:
            net.initialize_optimizer()
        lr = max(self.lr * self.lr_decay**k, self.min_lr)
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        for penalty in net.penalties_:
            penalty.begin_task(net)

    def _train_task(self, X, y, task):
        """Train one chunk of one task; on any error, undo the whole chunk."""
        saved = self._save_progress()
        try:
            self._train_task_unguarded(X, y, task)
        except BaseException:
            self._restore_progress(saved)
            raise

    def _train_task_unguarded(self, X, y, task):
        if not self.tasks_ or task != self.tasks_[-1]:
            self._begin_task(task)
        net = self.net_
        net.output_mask_ = self._task_output_mask(task, y)
        X, y = self._to_tensor(X), self._to_tensor(y, dtype=self._target_dtype)
        seed = self._rng.randint(_MAX_SEED)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                net.train_chunk(
                    X,
                    y,
                    epochs=self.max_epochs,
                    generator=torch.Generator().manual_seed(seed),
                    penalty_step=self.penalty_step,
                )
            except FloatingPointError as error:
                advice = "a lower learning rate (lr)"
                if self.penalty_step == "explicit" and net.penalties_:
                    advice += ", a smaller penalty strength or penalty_step='implicit'"
                raise FloatingPointError(
                    f"Training diverged in task {task!r}: {error} The estimator was "
                    f"restored to its state before this task's chunk; try {advice}."
                ) from error
            for penalty in net.penalties_:
                penalty.consolidate(net, X, y)
                _check_finite_state(penalty, task)
        if self.keep_snapshots:
            snapshot = self._state_copy()
            if len(self.snapshots_) < len(self.tasks_):
                self.snapshots_.append(snapshot)
            else:
                self.snapshots_[-1] = snapshot

    def _save_progress(self):
        """Copy what training a chunk changes, for :meth:`_restore_progress`."""
        net = self.net_
        return {
            "attributes": dict(vars(self)),
            "tasks": list(self.tasks_),
            "snapshots": list(self.snapshots_),
            "task_classes": copy.deepcopy(getattr(self, "task_classes_", None)),
            "rng": self._rng.get_state(),
            "module": copy.deepcopy(net.module_.state_dict()),
            "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
            "penalties": [copy.deepcopy(vars(p)) for p in net.penalties_],
            "net": (net.task_index_, net.output_mask_, len(net.history_)),
        }

    def _restore_progress(self, saved):
        net = self.net_
        vars(self).clear()
        vars(self).update(saved["attributes"])
        self.tasks_[:] = saved["tasks"]
        self.snapshots_[:] = saved["snapshots"]
        if saved["task_classes"] is not None:
            self.task_classes_ = saved["task_classes"]
        self._rng.set_state(saved["rng"])
        net.module_.load_state_dict(saved["module"])
        net.optimizer_.load_state_dict(saved["optimizer"])
        for penalty, state in zip(net.penalties_, saved["penalties"], strict=True):
            vars(penalty).clear()
            vars(penalty).update(state)
        net.task_index_, net.output_mask_, n_epochs = saved["net"]
        del net.history_[n_epochs:]

    def _task_output_mask(self, task, y):
        return None

    @property
    def module_(self):
        """The trained network, ``net_.module_``."""
        return self.net_.module_

    # ---------------------------------------------------------------- snapshots
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
        after an error.

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
        try:
            yield self
        finally:
            self.module_.load_state_dict(current)

    # --------------------------------------------------------------- prediction
    def _forward(self, X, task_id=None):
        """Return the network's outputs for ``X`` as a float64 tensor on the CPU."""
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        mask = self._predict_output_mask(task_id, X.shape[0])
        X = self._to_tensor(X)
        training = self.module_.training
        self.module_.eval()
        try:
            with torch.no_grad():
                out = torch.cat(
                    [
                        self._forward_chunk(X[i : i + _PREDICT_BATCH])
                        for i in range(0, len(X), _PREDICT_BATCH)
                    ]
                )
        finally:
            self.module_.train(training)
        out = out.double().cpu()
        if mask is not None:
            out = out.masked_fill(~mask, float("-inf"))
        return out

    def _forward_chunk(self, X):
        """Forward a chunk zero-padded to ``_PREDICT_BATCH`` rows.

        Every chunk has the same shape, so the same kernels run and a sample's
        output does not depend on the other samples predicted with it.
        """
        n = len(X)
        if n < _PREDICT_BATCH:
            X = torch.cat([X, X.new_zeros((_PREDICT_BATCH - n, *X.shape[1:]))])
        return self.module_(X)[:n]

    def _predict_output_mask(self, task_id, n_samples):
        return None

    def __setstate__(self, state):
        super().__setstate__(state)
        if "net_" in state:
            for penalty in self.net_.penalties_:
                penalty.to(self.net_.device)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
