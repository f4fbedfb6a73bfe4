"""A safe file format for the continual estimators: tensors and JSON, never pickle.

A file is one safetensors file. Its tensors are every tensor and numeric array
of the estimator (module, optimizer, snapshots, penalty and callback state),
stored on the CPU; its ``__metadata__`` holds the format version, a SHA-256
digest of the content and one JSON document describing everything else. The
JSON names classes by qualified name; loading resolves them only from a fixed
set (skcl's own, ``torch.optim``'s optimizers, ``torch.nn``'s modules and
losses) and from the classes the caller passes, so that a file never makes
Python import or run code of its choosing.
"""

import importlib
import inspect
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback

from ._base import _ContinualEstimator
from ._file_format import Decoder, Encoder, read, write
from ._file_format import FormatError as _FormatError
from ._file_format import qualified_name as _qualified_name
from ._params import VIRTUAL_PREFIXES, device_available
from ._plugin import Plugin, _map_tensors
from ._state import (
    HistoryState,
    ModuleState,
    OptimizerState,
    OwnerState,
    RandomState,
    capture,
    rebuild,
    restore,
)

FORMAT = "skcl"
FORMAT_VERSION = 3
_NAMESPACES = (
    "skcl",
    "skcl.modules",
    "skcl.penalties",
    "skcl.replay",
    "skcl.plasticity",
    "skcl.callbacks",
    "skcl.datasets",
)


def _default_classes():
    """Return the classes a file may name without the caller's consent."""
    classes = {}
    for package in map(importlib.import_module, _NAMESPACES):
        for name in package.__all__:
            obj = getattr(package, name)
            if isinstance(obj, type):
                classes.setdefault(f"{package.__name__}.{name}", obj)
    for package, base in (
        (torch.optim, torch.optim.Optimizer),
        (torch.nn, torch.nn.Module),
    ):
        for name in dir(package):
            obj = getattr(package, name)
            if isinstance(obj, type) and issubclass(obj, base):
                classes.setdefault(f"{package.__name__}.{name}", obj)
    return classes


def _write(path, doc, tensors):
    write(path, doc, tensors, format_name=FORMAT, version=FORMAT_VERSION)


def _read(path):
    return read(path, format_name=FORMAT, version=FORMAT_VERSION)


def save(estimator, path):
    """Save a continual estimator to a file that loading never unpickles.

    The file is a `safetensors <https://huggingface.co/docs/safetensors>`_
    file: the tensors (network, optimizer state, snapshots, penalty and
    callback state, all on the CPU) are stored as tensors, everything else as
    JSON in its metadata, with a format version and a SHA-256 checksum. A
    loaded estimator predicts and continues training exactly as the saved one
    would. The write is atomic: an existing file is replaced only once the new
    one is complete.

    Supported: the estimator's parameters when they are numbers, strings,
    arrays, tensors, lists, tuples, dicts, classes (the module, the optimizer,
    ``module__activation``...), devices, ``RandomState`` instances, penalties
    and callbacks whose constructor arguments are such values; the fitted
    state of penalties and callbacks made of the same values (modules in that
    state are rebuilt by the penalty's ``initialize``, then loaded). Not
    supported (a ``TypeError`` says which parameter): module instances as
    ``module``, functions and other arbitrary objects; use pickle or joblib
    for those.

    Parameters
    ----------
    estimator : ContinualClassifier or ContinualRegressor
        A fitted or unfitted estimator.
    path : str or path-like
        Where to write; conventionally ``*.skcl`` or ``*.safetensors``.

    See Also
    --------
    load : Load the file back.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skcl import ContinualClassifier
    >>> from skcl import load, save
    >>> from skcl.penalties import EWC
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(penalty=EWC(), max_epochs=1, random_state=0)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 20))
    >>> path = os.path.join(tempfile.mkdtemp(), "clf.skcl")
    >>> save(clf, path)
    >>> restored = load(path)
    >>> restored.tasks_, bool((restored.predict_proba(X) == clf.predict_proba(X)).all())
    ([0, 1], True)
    """
    if not isinstance(estimator, _ContinualEstimator):
        raise TypeError(
            "save stores skcl's continual estimators, got "
            f"{type(estimator).__name__}; use pickle or joblib for other objects."
        )
    if getattr(estimator, "_snapshot_in_use", False):
        raise RuntimeError(
            "Cannot save inside `with estimator.use_snapshot(...)`: the network "
            "holds a snapshot's parameters. Save after the block."
        )
    encoder = Encoder(
        {cls: name for name, cls in _default_classes().items()},
        object_bases=(Plugin, Callback),
    )
    params = estimator.get_params(deep=False)
    doc = {
        "skcl_version": _skcl_version(),
        "torch_version": torch.__version__,
        "estimator": encoder.encode(type(estimator), "estimator"),
        "params": encoder.encode(params, "params"),
        "state": None,
    }
    if hasattr(estimator, "net_"):
        doc["state"] = encoder.encode(_plain(capture(estimator)), "state")
    _write(path, doc, encoder.tensors)


def _skcl_version():
    from . import __version__

    return __version__


def load(path, *, modules=(), device=None):
    """Load an estimator saved by :func:`save`, without unpickling anything.

    Classes named in the file are looked up, never imported: skcl's own
    (estimators, ``skcl.modules``, ``skcl.penalties``, ``skcl.replay``,
    ``skcl.plasticity``, ``skcl.callbacks``, ``skcl.datasets``' plug-ins),
    ``torch.optim``'s optimizers and ``torch.nn``'s modules and losses are
    known; any other class (a custom module, penalty or callback) must be
    passed in ``modules``. An unknown class, a file of another format version,
    a truncated, corrupted or inconsistent file raise a ``ValueError``.

    Parameters
    ----------
    path : str or path-like
        The file.
    modules : iterable of classes, default=()
        Further classes the file may name, matched by qualified name
        (``module.QualName``).
    device : str, torch.device or None, default=None
        Where to put the network, overriding the saved ``device`` parameter.
        None keeps the saved device, or the CPU, with a warning, when the saved
        device is a GPU that is not available.

    Returns
    -------
    estimator : ContinualClassifier or ContinualRegressor

    See Also
    --------
    save : Write the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skcl import ContinualRegressor
    >>> from skcl import load, save
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(40, 3))
    >>> reg = ContinualRegressor(max_epochs=1, random_state=0).fit(X, X[:, 0])
    >>> path = os.path.join(tempfile.mkdtemp(), "reg.skcl")
    >>> save(reg, path)
    >>> load(path, device="cpu").predict(X[:2]).shape
    (2,)
    """
    classes = _default_classes()
    for cls in modules:
        if not isinstance(cls, type):
            raise TypeError(f"modules must hold classes, got {cls!r}.")
        classes[_qualified_name(cls)] = cls
    doc, tensors = _read(path)
    decoder = Decoder(tensors, classes, object_bases=(Plugin, Callback))
    try:
        return _rebuild(doc, decoder, device)
    except (
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
        RuntimeError,
    ) as error:
        message = (
            f"missing entry {error}" if isinstance(error, KeyError) else str(error)
        )
        raise ValueError(f"Cannot load {path}: {message}") from error


def _rebuild(doc, decoder, device):
    cls = decoder.resolve(doc["estimator"]["type"], "estimator")
    if not issubclass(cls, _ContinualEstimator):
        raise _FormatError(f"{cls.__name__} is not a continual estimator.")
    params = decoder.decode(doc["params"], "params")
    unknown = [
        k
        for k in params
        if k not in cls._get_param_names() and not k.startswith(VIRTUAL_PREFIXES)
    ]
    if unknown:
        raise _FormatError(f"unexpected parameters {unknown} for {cls.__name__}.")
    if device is None and _unavailable(params.get("device", "cpu")):
        warnings.warn(
            f"The estimator was saved with device={str(params['device'])!r}, which "
            "is not available here: it is loaded on the CPU (device='cpu'). Pass "
            "device=... to load to choose.",
            UserWarning,
            stacklevel=3,
        )
        device = "cpu"
    if device is not None:
        params["device"] = device
    estimator = cls(**params)
    if doc["state"] is None:
        return estimator
    state = _unplain(decoder.decode(doc["state"], "state"), "state")
    _check_names(cls, state, "the estimator")
    _initialize_like(estimator, state)
    _check_tree(capture(estimator), state, "the estimator")
    restore(estimator, state)
    _check_fitted(estimator)
    return estimator


def _unavailable(device):
    """Whether a saved device is a torch device that is not usable here (asking
    torch, never importing a module from the file's string)."""
    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return False  # not a device: refused with the parameters
    return not device_available(device)


def _initialize_like(estimator, state):
    """Build the net as fit did, from the attributes fit takes from the data."""
    attributes = {
        k: rebuild(v) for k, v in state.items() if k in type(estimator)._data_attributes
    }
    vars(estimator).update(attributes)
    random_state, estimator.random_state = estimator.random_state, 0
    try:
        estimator._validate_params()
        X = np.empty((0, *estimator.input_shape_), dtype=np.float32)
        estimator._initialize(X, estimator._n_outputs())
    finally:
        estimator.random_state = random_state
    vars(estimator).update(attributes)


def _check_like(value, reference, where):
    """Check that a dict of tensors has the keys, shapes and dtypes of ``reference``."""
    if not isinstance(value, dict) or value.keys() != reference.keys():
        raise _FormatError(f"{where} does not hold the entries of the network's state.")
    for key, tensor in value.items():
        if not (
            isinstance(tensor, torch.Tensor)
            and tensor.shape == reference[key].shape
            and tensor.dtype == reference[key].dtype
        ):
            raise _FormatError(
                f"{where}[{key!r}] should be a {reference[key].dtype} tensor of "
                f"shape {tuple(reference[key].shape)}."
            )


def _check_optimizer(net):
    """Check the restored optimizer's state against a reference step.

    One step of a fresh optimizer on zero gradients shows the state each
    parameter should have (keys, shapes, dtypes).
    """
    optimizer = net.optimizer_
    state = optimizer.state_dict()
    if not state["state"]:
        return
    reference = type(optimizer)(
        [p.detach().clone() for p in net.module_.parameters()], **optimizer.defaults
    )
    reference.load_state_dict({"state": {}, "param_groups": state["param_groups"]})
    for group in reference.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    try:
        reference.step()
    except Exception:  # e.g. LBFGS needs a closure: nothing to compare with
        return
    expected = reference.state_dict()["state"]
    for index, entry in state["state"].items():
        model = expected.get(index)
        if model is None or entry.keys() != model.keys():
            raise _FormatError(
                f"optimizer state {index!r} does not match the optimizer."
            )
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) != isinstance(
                model[key], torch.Tensor
            ) or (
                isinstance(value, torch.Tensor)
                and (value.shape != model[key].shape or value.dtype != model[key].dtype)
            ):
                raise _FormatError(
                    f"optimizer state {index}/{key} does not match the optimizer."
                )


def _check_consistency(estimator, n_outputs):
    net = estimator.net_
    tasks, snapshots = estimator.tasks_, estimator.snapshots_
    if not (isinstance(tasks, list) and isinstance(snapshots, list)):
        raise _FormatError("tasks_ and snapshots_ must be lists.")
    n_snapshots = len(tasks) if estimator.keep_snapshots else 0
    if (
        len(snapshots) != n_snapshots
        or (estimator.initial_snapshot_ is None) == estimator.keep_snapshots
        or net.task_index_ != len(tasks) - 1
    ):
        raise _FormatError("the tasks, snapshots and task index do not agree.")
    mask = net.output_mask_
    if mask is not None and (mask.dtype != torch.bool or mask.shape != (n_outputs,)):
        raise _FormatError(
            f"output_mask should be a bool tensor of shape ({n_outputs},)."
        )
    for task, indices in getattr(estimator, "task_classes_", {}).items():
        if not all(
            isinstance(i, int) and 0 <= i < len(estimator.classes_) for i in indices
        ):
            raise _FormatError(f"task_classes_[{task!r}] holds invalid class indices.")


# The training state as plain values for the file format: each kind of
# state is a dict with one key starting with "$".
_KINDS = ("$owner", "$module", "$optimizer", "$history", "$rng", "$set", "$dict")


def _plain(state):
    if isinstance(state, OwnerState):
        items = {k: _plain(v) for k, v in state.items()}
        return {"$owner": [_qualified_name(state.cls), items]}
    if isinstance(state, ModuleState):
        tensors = {k: v.cpu() for k, v in state.tensors.items()}
        return {"$module": [tensors, state.training]}
    if isinstance(state, OptimizerState):
        return {"$optimizer": _plain(state.state_dict)}
    if isinstance(state, HistoryState):
        return {"$history": _plain(list(state))}
    if isinstance(state, RandomState):
        return {"$rng": list(state.state)}
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, (set, frozenset)):
        return {"$set": [_plain(v) for v in state]}
    if isinstance(state, list):
        return [_plain(v) for v in state]
    if isinstance(state, tuple):
        return tuple(_plain(v) for v in state)
    if isinstance(state, dict):
        items = {k: _plain(v) for k, v in state.items()}
        return (
            {"$dict": items}
            if len(items) == 1 and next(iter(items)) in _KINDS
            else items
        )
    return state


def _unplain(tree, where):
    if isinstance(tree, dict) and len(tree) == 1 and next(iter(tree)) in _KINDS:
        ((kind, value),) = tree.items()
        return _unplain_kind(kind, value, where)
    if isinstance(tree, list):
        return [_unplain(v, f"{where}[{i}]") for i, v in enumerate(tree)]
    if isinstance(tree, tuple):
        return tuple(_unplain(v, f"{where}[{i}]") for i, v in enumerate(tree))
    if isinstance(tree, dict):
        return {k: _unplain(v, f"{where}[{k!r}]") for k, v in tree.items()}
    return tree


def _unplain_kind(kind, value, where):
    try:
        if kind == "$owner":
            name, items = value
            return OwnerState(
                name, {k: _unplain(v, f"{where}.{k}") for k, v in items.items()}
            )
        if kind == "$module":
            tensors, training = value
            if not all(isinstance(t, bool) for t in training):
                raise TypeError("train/eval flags must be booleans")
            # A file holds the state_dict: non-persistent buffers are not saved.
            return ModuleState(dict(tensors), {}, list(training))
        if kind == "$optimizer":
            return OptimizerState(_unplain(value, where))
        if kind == "$history":
            if not all(isinstance(e, dict) for e in value):
                raise TypeError("the history must be a list of dicts")
            return HistoryState(_unplain(value, where))
        if kind == "$rng":
            name, keys, pos, has_gauss, cached = value
            rng = np.random.RandomState()
            rng.set_state(
                (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
            )
            return RandomState(rng.get_state())
        if kind == "$set":
            return {_unplain(v, where) for v in value}
        return {k: _unplain(v, f"{where}[{k!r}]") for k, v in value.items()}
    except (TypeError, ValueError, AttributeError) as error:
        raise _FormatError(
            f"{where} holds an invalid {kind[1:]} entry: {error}"
        ) from error


def _check_names(cls, state, where):
    """Check that ``state`` is stored for ``cls`` and only sets state attributes."""
    if not isinstance(state, OwnerState):
        raise _FormatError(f"{where} is not stored as an object's state.")
    name = _qualified_name(cls)
    if state.cls not in (name, cls):
        raise _FormatError(
            f"{where} is stored as a {state.cls}, but the file's classes build a "
            f"{name} there."
        )
    state.cls = cls
    params = set(inspect.signature(cls.__init__).parameters)
    declared = getattr(cls, "_training_state", None)
    clashes = sorted(
        k
        for k in state
        if (
            k not in declared
            if declared is not None
            else k in params or k.startswith(VIRTUAL_PREFIXES) or hasattr(cls, k)
        )
    )
    if clashes:
        raise _FormatError(f"{where} would overwrite {clashes} of {name}.")


def _check_tree(reference, state, where):
    """Check ``state`` against the state of the freshly built estimator.

    The estimator and its net must hold exactly the attributes of the class
    the file names; a penalty or callback at least those it initializes.
    """
    if isinstance(reference, OwnerState):
        _check_names(reference.cls, state, where)
        missing = sorted(reference.keys() - state.keys())
        strict = issubclass(reference.cls, _ContinualEstimator) or hasattr(
            reference.cls, "_training_state"
        )
        extra = sorted(state.keys() - reference.keys()) if strict else []
        if missing or extra:
            raise _FormatError(
                f"{where} does not hold the state of a "
                f"{_qualified_name(reference.cls)}: missing {missing}, unexpected "
                f"{extra}."
            )
        for key in reference.keys() & state.keys():
            _check_tree(reference[key], state[key], f"{where}.{key}")
    elif isinstance(reference, ModuleState):
        if not isinstance(state, ModuleState):
            raise _FormatError(f"{where} is not stored as a module's state.")
        _check_like(state.tensors, reference.tensors, where)
        if len(state.training) != len(reference.training):
            raise _FormatError(f"{where} holds the flags of another module.")
    elif isinstance(reference, (list, tuple)) and isinstance(state, (list, tuple)):
        owners = [r for r in reference if isinstance(r, OwnerState)]
        if owners and len(state) != len(reference):
            raise _FormatError(
                f"{where} holds {len(state)} objects, not {len(reference)}."
            )
        for i, (r, v) in enumerate(zip(reference, state, strict=False)):
            if isinstance(r, (OwnerState, ModuleState, list, tuple)):
                _check_tree(r, v, f"{where}[{i}]")


def _check_values(estimator):
    """Let the estimator and each plug-in check that their state can work.

    The plug-ins see empty batches with the shapes and dtypes of the
    estimator's training chunks, on the CPU where the file's state is.
    """
    try:
        estimator._check_state()
    except ValueError as error:
        raise _FormatError(str(error)) from error
    net = estimator.net_
    dtype = next(net.module_.parameters()).dtype
    X = torch.empty((0, *estimator.input_shape_), dtype=dtype)
    target = estimator._target_dtype or dtype
    y = torch.empty((0,) if target == torch.long else (0, estimator._n_outputs()))
    y = y.to(target)
    for i, plugin in enumerate(net.plugins_):
        where = f"plug-in {i} ({type(plugin).__name__})"
        try:
            plugin.check_state(net, X, y)
        except ValueError as error:
            raise _FormatError(f"{where}: {error}") from error


def _check_fitted(estimator):
    """Check the restored estimator's consistency; move its state to its device."""
    net = estimator.net_
    n_outputs = estimator._n_outputs()
    _check_consistency(estimator, n_outputs)
    reference = {k: v.cpu() for k, v in net.module_.state_dict().items()}
    if estimator.initial_snapshot_ is not None:
        _check_like(estimator.initial_snapshot_, reference, "initial_snapshot_")
    for i, snapshot in enumerate(estimator.snapshots_):
        _check_like(snapshot, reference, f"snapshots_[{i}]")
    _check_optimizer(net)
    _check_values(estimator)
    for _, callback in net.callbacks_:
        vars(callback).update(_map_tensors(vars(callback), lambda t: t.to(net.device)))
    for plugin in net.plugins_:
        plugin.to(net.device)
    if net.output_mask_ is not None:
        net.output_mask_ = net.output_mask_.to(net.device)
