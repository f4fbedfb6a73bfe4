"""The continual estimators' parameters: access, validation, and what may change."""

import hashlib
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from skorch.callbacks import Callback
from torch import nn
from typing_extensions import Self

from ._plugin import Plugin
from .penalties import Penalty
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


class ParamsMixin(BaseEstimator):
    """``get_params``/``set_params`` with ``**kwargs`` parameters and penalty lists,
    and their validation at every call."""

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
        unknown = [
            k for k in self._extra_params() if not k.startswith(VIRTUAL_PREFIXES)
        ]
        if unknown:
            raise TypeError(
                f"Unexpected parameters {unknown}; extra parameters must start "
                f"with one of {VIRTUAL_PREFIXES}."
            )

        def check(name, ok, expected):
            if not ok:
                raise ValueError(
                    f"{name} must be {expected}, got {getattr(self, name)!r}."
                )

        def positive_int(value):
            return (
                isinstance(value, numbers.Integral)
                and not isinstance(value, bool)
                and value >= 1
            )

        def real(value):
            return (
                isinstance(value, numbers.Real)
                and not isinstance(value, bool)
                and np.isfinite(value)
            )

        check("lr", real(self.lr) and self.lr > 0, "a positive float")
        check("lr_decay", real(self.lr_decay) and self.lr_decay > 0, "a positive float")
        check("min_lr", real(self.min_lr) and self.min_lr >= 0, "a float >= 0")
        check("batch_size", positive_int(self.batch_size), "an int >= 1")
        check("max_epochs", positive_int(self.max_epochs), "an int >= 1")
        check("momentum", real(self.momentum) and self.momentum >= 0, "a float >= 0")
        check(
            "penalty_step",
            isinstance(self.penalty_step, str)
            and self.penalty_step in ("implicit", "explicit"),
            "'implicit' or 'explicit'",
        )
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
        if not all(
            isinstance(p, Plugin) and not isinstance(p, Replay)
            for p in self._penalty_list()
        ):
            raise TypeError(
                "penalty must be None, a skcl.penalties.Penalty (or another "
                f"skcl.Plugin) or a list of them, got {self.penalty!r}."
                + (
                    " Replay strategies go in replay=."
                    if any(isinstance(p, Replay) for p in self._penalty_list())
                    else ""
                )
            )
        if self.replay is not None and not isinstance(self.replay, Replay):
            raise TypeError(
                "replay must be None or a skcl.replay.Replay (e.g. "
                f"skcl.replay.ER()), got {self.replay!r}."
                + (
                    " Penalties go in penalty=."
                    if isinstance(self.replay, Penalty)
                    else ""
                )
            )
        callbacks = self.callbacks or []
        if not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(cb, Callback)
            or (
                isinstance(cb, tuple)
                and len(cb) == 2
                and isinstance(cb[0], str)
                and isinstance(cb[1], Callback)
            )
            for cb in callbacks
        ):
            raise TypeError(
                "callbacks must be None or a list of skorch callbacks (instances of "
                f"skorch.callbacks.Callback) or of (name, callback) pairs, got "
                f"{self.callbacks!r}."
            )
        _check_device(self.device)


def _check_device(device):
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must name a torch device, got {device!r}.") from error
    available = {
        "cuda": torch.cuda.is_available,
        "mps": torch.backends.mps.is_available,
    }.get(kind, lambda: True)
    if not available():
        raise ValueError(
            f"device {device!r} is not available on this machine (torch reports no "
            f"{kind} device); use device='cpu'."
        )
