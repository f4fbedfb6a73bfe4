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

import copy
import importlib
import inspect
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

from ._base import _VIRTUAL_PREFIXES, _ContinualEstimator
from ._file_format import Decoder, Encoder, read, write
from ._file_format import FormatError as _FormatError
from ._file_format import qualified_name as _qualified_name
from .penalties import Penalty
from .penalties._base import _map_tensors

FORMAT = "skcl"
FORMAT_VERSION = 1
_NAMESPACES = ("skcl", "skcl.modules", "skcl.penalties", "skcl.callbacks")


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


def _init_params(obj, path):
    """Return the constructor arguments of a penalty or callback, by name."""
    params = {}
    for name, parameter in inspect.signature(type(obj)).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"Cannot store {path}: the constructor of {type(obj).__name__} "
                "takes *args or **kwargs, so its parameters are unknown."
            )
        if not hasattr(obj, name):
            raise TypeError(
                f"Cannot store {path}: {type(obj).__name__} does not keep its "
                f"constructor argument {name!r} as an attribute."
            )
        params[name] = getattr(obj, name)
    return params


def _state(obj, path):
    """Return the attributes of ``obj`` that are not constructor arguments."""
    params = _init_params(obj, path)
    return {k: v for k, v in vars(obj).items() if k not in params}


class _Encoder(Encoder):
    """Also stores modules, as their state dicts, where ``modules=True``."""

    _modules = False

    def encode(self, value, path, *, modules=None):
        if modules is not None:
            previous, self._modules = self._modules, modules
            try:
                return self.encode(value, path)
            finally:
                self._modules = previous
        if self._modules and isinstance(value, torch.nn.Module):
            state = value.state_dict(keep_vars=True)
            return {"module": self.encode(state, f"{path}/state")}
        return super().encode(value, path)


class _Decoder(Decoder):
    """Also loads stored modules into the live ones of ``current``."""

    def __init__(self, tensors, classes, object_bases=()):
        super().__init__(tensors, classes, object_bases)
        self._live = {}

    def decode(self, tree, path, current=None):
        if current is not None:
            self._live = dict(_live_modules(current, path))
            try:
                return self.decode(tree, path)
            finally:
                self._live = {}
        if isinstance(tree, dict) and tree.keys() == {"module"}:
            module = self._live.get(path)
            if not isinstance(module, torch.nn.Module):
                raise _FormatError(
                    f"{path} holds a module that initialize(net) did not rebuild."
                )
            module.load_state_dict(self.decode(tree["module"], f"{path}/state"))
            return module
        return super().decode(tree, path)


def _live_modules(value, path):
    """Yield the modules in nested lists, tuples and dicts, with their paths."""
    if isinstance(value, torch.nn.Module):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _live_modules(item, f"{path}/{i}")
    elif isinstance(value, dict) and all(type(k) is str for k in value):
        for key, item in value.items():
            yield from _live_modules(item, f"{path}/{key}")


def _write(path, doc, tensors):
    write(path, doc, tensors, format_name=FORMAT, version=FORMAT_VERSION)


def _read(path):
    return read(path, format_name=FORMAT, version=FORMAT_VERSION)


def _user_callbacks(net):
    defaults = {name for name, _ in net._default_callbacks}
    return [(name, cb) for name, cb in net.callbacks_ if name not in defaults]


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
    encoder = _Encoder(
        {cls: name for name, cls in _default_classes().items()},
        object_bases=(Penalty, Callback),
    )
    params = estimator.get_params(deep=False)
    doc = {
        "skcl_version": _skcl_version(),
        "torch_version": torch.__version__,
        "estimator": encoder.encode(type(estimator), "estimator"),
        "params": encoder.encode(params, "params"),
        "fitted": None,
    }
    if hasattr(estimator, "net_"):
        net = estimator.net_
        attributes = {
            k: v
            for k, v in vars(estimator).items()
            if k not in params and k not in ("net_", "penalty_")
        }
        penalties = [
            encoder.encode(_state(p, f"penalty {i}"), f"penalties/{i}", modules=True)
            for i, p in enumerate(net.penalties_)
        ]
        callbacks = {
            name: encoder.encode(_state(cb, name), f"callbacks/{name}", modules=True)
            for name, cb in _user_callbacks(net)
        }
        doc["fitted"] = {
            "attributes": encoder.encode(attributes, "attributes"),
            "module": encoder.encode(net.module_.state_dict(), "module"),
            "optimizer": encoder.encode(net.optimizer_.state_dict(), "optimizer"),
            "history": encoder.encode(list(net.history_), "history"),
            "task_index": net.task_index_,
            "output_mask": encoder.encode(net.output_mask_, "output_mask"),
            "penalties": penalties,
            "callbacks": callbacks,
        }
    _write(path, doc, encoder.tensors)


def _skcl_version():
    from . import __version__

    return __version__


def load(path, *, modules=(), device=None):
    """Load an estimator saved by :func:`save`, without unpickling anything.

    Classes named in the file are looked up, never imported: skcl's own
    (estimators, ``skcl.modules``, ``skcl.penalties``, ``skcl.callbacks``),
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
    decoder = _Decoder(tensors, classes, object_bases=(Penalty, Callback))
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
        if k not in cls._get_param_names() and not k.startswith(_VIRTUAL_PREFIXES)
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
    fitted = doc["fitted"]
    if fitted is None:
        return estimator
    attributes = decoder.decode(fitted["attributes"], "attributes")
    _check_state_names(estimator, attributes, params, "attributes")
    n_outputs = _initialize_like(estimator, attributes)
    net = estimator.net_
    net.task_index_ = fitted["task_index"]
    mask = decoder.decode(fitted["output_mask"], "output_mask")
    net.output_mask_ = None if mask is None else mask.to(net.device)
    _check_consistency(estimator, n_outputs)
    module_state = decoder.decode(fitted["module"], "module")
    _check_like(module_state, net.module_.state_dict(), "module")
    net.module_.load_state_dict(module_state)
    reference = {k: v.cpu() for k, v in net.module_.state_dict().items()}
    if estimator.initial_snapshot_ is not None:
        _check_like(estimator.initial_snapshot_, reference, "initial_snapshot_")
    for i, snapshot in enumerate(estimator.snapshots_):
        _check_like(snapshot, reference, f"snapshots_[{i}]")
    _load_optimizer(net, decoder.decode(fitted["optimizer"], "optimizer"))
    history = decoder.decode(fitted["history"], "history")
    if not (isinstance(history, list) and all(isinstance(e, dict) for e in history)):
        raise _FormatError("history must be a list of dicts.")
    net.history_ = History(history)
    _load_penalties(net, fitted["penalties"], decoder)
    _load_callbacks(net, fitted["callbacks"], decoder)
    return estimator


def _check_state_names(obj, state, params, where):
    """Refuse state that would replace a parameter, a method or a built object."""
    if not isinstance(state, dict):
        raise _FormatError(f"{where} must be a dict.")
    clashes = [
        k
        for k in state
        if k in params or k in ("net_", "penalty_") or hasattr(type(obj), k)
    ]
    if clashes:
        raise _FormatError(
            f"{where} would overwrite {clashes} of {type(obj).__name__}."
        )


def _unavailable(device):
    kind = torch.device(device).type
    if kind == "cuda":
        return not torch.cuda.is_available()
    if kind == "mps":
        return not torch.backends.mps.is_available()
    return False


def _initialize_like(estimator, attributes):
    """Build the net as ``_initialize`` does, set ``attributes``; return n_outputs."""
    vars(estimator).update(attributes)
    if hasattr(estimator, "classes_"):
        n_outputs = len(estimator.classes_)
    else:
        n_outputs = estimator.n_outputs_
    random_state, estimator.random_state = estimator.random_state, 0
    try:
        estimator._validate_params()
        X = np.empty((0, *estimator.input_shape_), dtype=np.float32)
        estimator._initialize(X, n_outputs)
    finally:
        estimator.random_state = random_state
    vars(estimator).update(attributes)
    return n_outputs


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


def _load_optimizer(net, state):
    """Load the optimizer's state, checked against a reference step.

    One step of a copy of the freshly built optimizer on zero gradients shows
    the state each parameter should have (keys, shapes, dtypes).
    """
    optimizer = net.optimizer_
    reference = copy.deepcopy(optimizer)
    optimizer.load_state_dict(state)
    loaded = optimizer.state_dict()["state"]
    if not loaded:
        return
    reference.load_state_dict({"state": {}, "param_groups": state["param_groups"]})
    for group in reference.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    try:
        reference.step()
    except Exception:  # e.g. LBFGS needs a closure: nothing to compare with
        return
    expected = reference.state_dict()["state"]
    for index, entry in loaded.items():
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


def _load_penalties(net, states, decoder):
    if not isinstance(states, list) or len(states) != len(net.penalties_):
        raise _FormatError("the file does not hold one state per penalty.")
    trainable = [(n, p) for n, p in net.module_.named_parameters() if p.requires_grad]
    for i, (penalty, tree) in enumerate(zip(net.penalties_, states, strict=True)):
        state = decoder.decode(tree, f"penalties/{i}", vars(penalty))
        where = f"penalty {i} ({type(penalty).__name__})"
        _check_state_names(penalty, state, _init_params(penalty, where), where)
        for name, value in state.items():
            _check_aligned(value, trainable, f"{where}.{name}")
        vars(penalty).update(state)
        penalty.to(net.device)


def _check_aligned(value, trainable, where):
    """Check lists and dicts with one tensor per trainable parameter against them."""
    if isinstance(value, list) and len(value) == len(trainable):
        pairs = zip(value, (p for _, p in trainable), strict=True)
    elif isinstance(value, dict) and value.keys() == {n for n, _ in trainable}:
        pairs = ((value[n], p) for n, p in trainable)
    else:
        return
    for tensor, param in pairs:
        if isinstance(tensor, torch.Tensor) and (
            tensor.shape != param.shape or tensor.dtype != param.dtype
        ):
            raise _FormatError(
                f"{where} holds a {tensor.dtype} tensor of shape {tuple(tensor.shape)} "
                f"for a parameter of shape {tuple(param.shape)} ({param.dtype})."
            )


def _load_callbacks(net, states, decoder):
    callbacks = dict(_user_callbacks(net))
    if not isinstance(states, dict) or states.keys() != callbacks.keys():
        raise _FormatError("the file's callbacks do not match the estimator's.")
    for name, tree in states.items():
        callback = callbacks[name]
        state = decoder.decode(tree, f"callbacks/{name}", vars(callback))
        _check_state_names(callback, state, _init_params(callback, name), name)
        vars(callback).update(_map_tensors(state, lambda t: t.to(net.device)))
