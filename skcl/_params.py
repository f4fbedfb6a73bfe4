"""The continual estimators' parameters: access, validation, and what may change."""

import hashlib
import numbers
import os
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from skorch.callbacks import Callback
from torch import nn
from typing_extensions import Self

from ._constraints import SIZE, STRENGTH, Interval, Satisfies, StrOptions, check_params
from ._hooks import Hooks
from ._plugin import Plugin
from .replay import Replay

VIRTUAL_PREFIXES = ("module__", "optimizer__", "criterion__", "callbacks__")
# Parameters read at every call; all others build the network and are frozen
# once it is built.
MUTABLE = frozenset(
    {
        "lr",
        "lr_decay",
        "min_lr",
        "batch_size",
        "max_epochs",
        "momentum",
        "reset_optimizer",
        "penalty_step",
        "penalty",  # its hyper-parameters; its structure is frozen
        "replay",  # likewise
    }
)


def penalty_keys(penalties):
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


def fingerprint(value):
    """Return a string that changes when a frozen parameter's value changes."""
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, nn.Module):
        return f"{fingerprint(type(value))}:{value!r}"
    if isinstance(value, np.random.RandomState):
        return "RandomState"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(fingerprint, value)) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{k!r}: {fingerprint(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, np.ndarray):
        data = value.tobytes() if value.dtype.kind != "O" else repr(value.tolist())
        digest = hashlib.sha256(data if isinstance(data, bytes) else data.encode())
        return f"array({value.shape}, {value.dtype}, {digest.hexdigest()[:16]})"
    if isinstance(value, Plugin):  # hyper-parameters may change, but these
        frozen = {k: getattr(value, k) for k in getattr(value, "_frozen_params", ())}
        return fingerprint(type(value)) + (f"({fingerprint(frozen)})" if frozen else "")
    if hasattr(value, "get_params"):
        return (
            f"{fingerprint(type(value))}({fingerprint(value.get_params(deep=False))})"
        )
    return repr(value)


def _is_module(value):
    return isinstance(value, nn.Module) or (
        isinstance(value, type) and issubclass(value, nn.Module)
    )


def _is_optimizer(value):
    return isinstance(value, type) and issubclass(value, torch.optim.Optimizer)


def _is_penalties(value):
    listed = value if isinstance(value, (list, tuple)) else [value]
    return all(isinstance(p, Plugin) and not isinstance(p, Replay) for p in listed)


def _is_callbacks(value):
    return isinstance(value, (list, tuple)) and all(
        isinstance(cb, Callback)
        or (
            isinstance(cb, tuple)
            and len(cb) == 2
            and isinstance(cb[0], str)
            and isinstance(cb[1], Callback)
        )
        for cb in value
    )


POSITIVE = Interval(numbers.Real, 0, None, closed="neither")


class ParamsMixin(BaseEstimator):
    """``get_params``/``set_params`` with ``**kwargs`` parameters and penalty lists,
    and their validation at every call."""

    # Checked at every fit and partial_fit, with each plug-in's own (see
    # skcl._constraints); the device is checked against torch's devices.
    _parameter_constraints: dict = {  # noqa: RUF012
        "module": [Satisfies(_is_module, "a torch.nn.Module class or instance")],
        "penalty": [
            None,
            Satisfies(
                _is_penalties,
                "a skcl.penalties.Penalty (or another skcl.Plugin) or a list of "
                "them (Replay strategies go in replay=)",
            ),
        ],
        "replay": [
            None,
            Satisfies(
                lambda value: isinstance(value, Replay),
                "a skcl.replay.Replay such as skcl.replay.ER() (Penalties go in "
                "penalty=)",
            ),
        ],
        "penalty_step": [StrOptions({"implicit", "explicit"})],
        "lr": [POSITIVE],
        "lr_decay": [POSITIVE],
        "min_lr": [STRENGTH],
        "batch_size": [SIZE],
        "max_epochs": [SIZE],
        "optimizer": [Satisfies(_is_optimizer, "a torch.optim.Optimizer class")],
        "momentum": [STRENGTH],
        "reset_optimizer": ["boolean"],
        "keep_snapshots": ["boolean"],
        "callbacks": [
            None,
            Satisfies(
                _is_callbacks,
                "a list of skorch callbacks (instances of "
                "skorch.callbacks.Callback) or of (name, callback) pairs",
            ),
        ],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

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
                penalty_keys(self.penalty), self.penalty, strict=True
            ):
                for key in keys:
                    params[f"penalty__{key}"] = penalty
                    if isinstance(penalty, Plugin):
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
            if key.startswith(VIRTUAL_PREFIXES) or (
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
        found = [i for i, keys in enumerate(penalty_keys(self.penalty)) if ref in keys]
        if not found:
            raise ValueError(
                f"Invalid parameter {key!r}: no penalty {ref!r}; the penalties are "
                f"{penalty_keys(self.penalty)}."
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

    def _plugin_list(self):
        """Return the penalties, then the replay strategy, as declared."""
        replay = [] if self.replay is None else [self.replay]
        return [*self._penalty_list(), *replay]

    def _frozen_params(self):
        """Return fingerprints of the parameters that build the network, by name."""
        params = self.get_params(deep=False)
        frozen = {k: fingerprint(v) for k, v in params.items() if k not in MUTABLE}
        penalty = self.penalty
        frozen["penalty"] = fingerprint(
            penalty if isinstance(penalty, (list, tuple)) else [penalty]
        ) + ("" if isinstance(penalty, (list, tuple)) else " alone")
        frozen["replay"] = fingerprint(self.replay)
        return frozen

    def _check_frozen_params(self):
        """Refuse a change of a parameter that the fitted network was built with."""
        now = self._frozen_params()
        built = getattr(self, "_built_with", now)
        changed = sorted(
            k for k in built.keys() | now.keys() if built.get(k) != now.get(k)
        )
        if not changed:
            return
        raise ValueError(
            f"The parameters {changed} changed since the network was built; they "
            "cannot change between partial_fit calls. Call fit to train anew with "
            "them, or sklearn.base.clone(estimator) for an unfitted copy."
        )

    def _validate_params(self):
        """Check every parameter, the plug-ins' included, before anything changes."""
        unknown = [
            k for k in self._extra_params() if not k.startswith(VIRTUAL_PREFIXES)
        ]
        if unknown:
            raise TypeError(
                f"Unexpected parameters {unknown}; extra parameters must start "
                f"with one of {VIRTUAL_PREFIXES}."
            )
        check_params(self)
        for prefix, plugin in self._plugin_prefixes():
            check_params(plugin, prefix=prefix)
        replacing = [
            prefix.rstrip("_")
            for prefix, plugin in self._plugin_prefixes()
            if Hooks([plugin])["task_loss"]
        ]
        if len(replacing) > 1:
            raise ValueError(
                f"The plug-ins {replacing} each replace the task loss (task_loss); "
                "at most one plug-in may."
            )
        _check_device(self.device)

    def _plugin_prefixes(self):
        """Return ``(prefix, plug-in)`` pairs, the prefix as ``set_params`` takes it."""
        if isinstance(self.penalty, (list, tuple)):
            prefixes = [f"penalty__{name}__" for _, name in penalty_keys(self.penalty)]
            pairs = list(zip(prefixes, self.penalty, strict=True))
        else:
            pairs = [("penalty__", p) for p in self._penalty_list()]
        replay = [] if self.replay is None else [("replay__", self.replay)]
        return pairs + replay

    def _check_replay_memory(self, X, n_outputs):
        """Refuse a replay memory larger than the device's memory, naming its bytes.

        The memory allocates its rows at its first write, in the middle of
        training: estimate them from a sample's width and dtype beforehand.
        """
        if self.replay is None:
            return
        dtype = _network_dtype(self)
        width = int(np.prod(X.shape[1:]))
        target = 8 if self._target_dtype == torch.long else n_outputs * dtype.itemsize
        masked = getattr(self, "multi_head", False)
        row_bytes = {
            "X": width * dtype.itemsize,
            "y": target,
            "tasks": 8,
            "logits": n_outputs * dtype.itemsize,
            "masks": n_outputs if masked else 0,
        }
        needed = self.replay.memory_bytes(row_bytes, n_classes=n_outputs)
        limit = _device_bytes(self.device)
        if limit is None or needed <= limit:
            return
        raise ValueError(
            f"replay__memory_size={self.replay.memory_size!r} needs a replay memory "
            f"of about {needed:.3g} bytes ({needed / 2**30:.3g} GiB; each row holds a "
            f"sample of {row_bytes['X']} bytes as {dtype}, its target and task), "
            f"more than the {limit:.3g} bytes ({limit / 2**30:.3g} GiB) of device "
            f"{self.device!r}; lower replay__memory_size."
        )


def _network_dtype(estimator):
    """The dtype of the network's parameters, built or to be built."""
    if hasattr(estimator, "net_"):
        return next(estimator.module_.parameters()).dtype
    module = estimator.module
    if isinstance(module, nn.Module):
        param = next(module.parameters(), None)
        if param is not None:
            return param.dtype
    return torch.get_default_dtype()


def _device_bytes(device):
    """The memory of ``device`` in bytes, or None where it is not known."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    if kind == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return None
    return None


def available_devices():
    """The device types torch reports usable here, with their number of devices:
    the CPU, and the accelerator torch was built for where it is available.

    Only torch's own reports are asked (``torch.accelerator``, else CUDA and
    MPS): no module is imported from a device's name.
    """
    devices = {"cpu": 1}
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:  # torch >= 2.6
        if accelerator.is_available():
            devices[accelerator.current_accelerator().type] = accelerator.device_count()
    else:
        if torch.cuda.is_available():
            devices["cuda"] = torch.cuda.device_count()
        if torch.backends.mps.is_available():
            devices["mps"] = 1
    return devices


def _device_error(device):
    """Why ``device`` cannot hold the network here, or None where it can."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return f"device must name a torch device, got {device!r}."
    available = available_devices()
    count = available.get(device.type, 0)
    if count and (device.type == "cpu" or device.index is None or device.index < count):
        return None
    reported = ", ".join(
        f"{n} {kind} device{'s' * (n != 1)}" for kind, n in available.items()
    )
    return (
        f"device {str(device)!r} is not available on this machine (torch reports "
        f"{reported}); use one of {sorted(available)}, e.g. device='cpu'."
    )


def device_available(device):
    """Whether ``device`` names a torch device that is usable here."""
    return _device_error(device) is None


def _check_device(device):
    error = _device_error(device)
    if error is not None:
        raise ValueError(error)
