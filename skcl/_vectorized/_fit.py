"""Fit continual estimators that differ only in per-candidate scalars, as one."""

import torch
from torch import nn

from .._params import fingerprint
from ._chunk import STACKED_HOOKS, stepping, train_together

# Estimator parameters that may differ within a group; every plug-in's
# hyper-parameters may too, since its task-level hooks run per candidate.
PER_CANDIDATE = ("lr", "lr_decay", "min_lr", "momentum", "random_state")
# The stacked parameters, gradients, buffers, centres, precisions and
# workspace of a group: at most this many bytes (larger groups run in parts).
STACK_BYTES = 2**30
# What the stacked path runs instead of fit: a subclass must not change them.
_TRAINING_METHODS = (
    "fit",
    "partial_fit",
    "_fit",
    "_start_fit",
    "_train_task",
    "_train_task_unguarded",
    "_open_chunk",
    "_keep_snapshot",
)
_SGD_DEFAULTS = dict(dampening=0, nesterov=False, weight_decay=0, maximize=False)


def stacking_key(estimator):
    """Return ``(key, None)``, equal keys for estimators that can train stacked,
    or ``(None, reason)`` for an estimator that cannot."""
    from .._base import _ContinualEstimator

    if not isinstance(estimator, _ContinualEstimator):
        return None, f"{type(estimator).__name__} is not a continual estimator"
    for name in _TRAINING_METHODS:
        if not getattr(type(estimator), name).__module__.startswith("skcl."):
            return None, f"{type(estimator).__name__} overrides {name}"
    params = estimator.get_params(deep=False)
    if params["callbacks"] is not None:
        return None, "it has callbacks, which run inside its training loop"
    if params["replay"] is not None:
        return None, (
            f"its replay strategy {type(params['replay']).__name__} draws from its "
            "own memory at every step, which the stacked loop does not do"
        )
    if params["optimizer"] is not torch.optim.SGD:
        name = getattr(params["optimizer"], "__name__", params["optimizer"])
        return None, f"its optimizer is {name}; only torch.optim.SGD is stacked"
    stepping_types = []
    for plugin in estimator._penalty_list():
        hooks = stepping(plugin)
        if hooks and not (plugin._stackable_steps and set(hooks) <= set(STACKED_HOOKS)):
            return None, (
                f"its penalty {type(plugin).__name__} acts at every step "
                f"({', '.join(hooks)})"
            )
        if hooks:
            stepping_types.append(type(plugin))
    key = {
        name: fingerprint(value)
        for name, value in params.items()
        if name not in (*PER_CANDIDATE, "penalty")
    }
    key["penalty"] = fingerprint(stepping_types)
    return key, None


def differences(key, other):
    """Name the parameters in which two stacking keys differ."""
    return sorted(
        name for name in key.keys() | other.keys() if key.get(name) != other.get(name)
    )


def fit_together(estimators, X, y, task_id=None, *, partial=False):
    """Fit ``estimators`` on one stream, stacked when they can share a network.

    Estimators with equal :func:`stacking_key` train as one stacked network
    (in parts of at most ``STACK_BYTES``), each ending as its own ``fit``
    (``partial_fit`` with ``partial=True``) would leave it; otherwise, or
    when the network or optimizer turns out not to stack, each is fitted
    alone. An estimator whose training fails is left as the failure left
    it, not rolled back: discard it.

    Returns
    -------
    outcomes : list
        Per estimator, the fitted estimator or the exception its fit raised.
    reason : str or None
        Why they were fitted one by one, or None if they trained stacked.
    """
    keys = [stacking_key(e) for e in estimators]
    reason = next((why for _, why in keys if why is not None), None)
    if reason is None:
        changed = next(
            (differences(keys[0][0], key) for key, _ in keys[1:] if key != keys[0][0]),
            None,
        )
        if changed:
            reason = f"the candidates differ in {', '.join(changed)}"
    if reason is None:
        reason, outcomes = _Group(estimators).fit(X, y, task_id, partial)
        if reason is None:
            return outcomes, None
    return [_fit_alone(e, X, y, task_id, partial) for e in estimators], reason


def _fit_alone(estimator, X, y, task_id, partial):
    try:
        fit = estimator.partial_fit if partial else estimator.fit
        return fit(X, y, task_id=task_id)
    except Exception as error:
        return error


class _Group:
    """Estimators with one stacking key, fitted stacked, chunk after chunk."""

    def __init__(self, estimators):
        self.estimators = estimators

    def fit(self, X, y, task_id, partial):
        """Return ``(reason, outcomes)``: a reason not to stack, or the outcomes."""
        outcomes, chunks = [], None
        for estimator in self.estimators:
            try:
                _, _, estimator_chunks = estimator._start_fit(
                    X, y, task_id, None, not partial
                )
            except Exception as error:
                outcomes.append(error)
                continue
            outcomes.append(None)
            if chunks is None:
                chunks = list(estimator_chunks)
        fitted = [
            e for e, o in zip(self.estimators, outcomes, strict=True) if o is None
        ]
        if not fitted:
            return None, outcomes
        reason = _runtime_reason(fitted, chunks[0][0][0])
        if reason is not None:
            return reason, None
        size = max(1, STACK_BYTES // _stacked_bytes(fitted[0]))
        for start in range(0, len(fitted), size):
            part = fitted[start : start + size]
            errors = dict.fromkeys(map(id, part))
            for (X_c, y_c, labels), task in chunks:
                alive = [e for e in part if errors[id(e)] is None]
                if not alive:
                    break
                errors_now = _train_chunk(alive, X_c, y_c, labels, task)
                for e, error in zip(alive, errors_now, strict=True):
                    errors[id(e)] = error
            for e in part:
                outcomes[self.estimators.index(e)] = errors[id(e)] or e
        return None, outcomes


def _train_chunk(estimators, X, y, labels, task):
    """Train one chunk of ``task`` stacked; return each estimator's error or None."""
    opened = [e._open_chunk(labels, task) for e in estimators]
    seeds = [seed for seed, _ in opened]
    steps = [step for _, step in opened]
    shared = len(set(seeds)) == 1
    generators = [
        torch.Generator().manual_seed(s) for s in seeds[: 1 if shared else None]
    ]
    masks = None if shared else [torch.Generator().manual_seed(s) for s in seeds]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds[0])
        errors = train_together(
            [e.net_ for e in estimators],
            X,
            y,
            epochs=steps[0]["epochs"],
            batch_size=steps[0]["batch_size"],
            lrs=[s["lr"] for s in steps],
            momenta=[s["momentum"] for s in steps],
            penalty_step=steps[0]["penalty_step"],
            output_mask=steps[0]["output_mask"],
            generators=generators,
            dropout_generators=masks,
        )
        after = torch.get_rng_state()
    outcomes = []
    for k, (estimator, error) in enumerate(zip(estimators, errors, strict=True)):
        try:
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(after if shared else masks[k].get_state())
                with estimator._divergence_reported(task):
                    if error is not None:
                        raise error
                estimator.net_.consolidate(X, y, task)
            estimator._keep_snapshot()
        except FloatingPointError as caught:
            outcomes.append(caught)
            continue
        outcomes.append(None)
    return outcomes


def _runtime_reason(estimators, X):
    """Why the built networks cannot train stacked, or None."""
    for estimator in estimators:
        net = estimator.net_
        optimizer = net.optimizer_
        groups = optimizer.param_groups
        if type(optimizer) is not torch.optim.SGD or len(groups) != 1:
            return "its optimizer is not a plain torch.optim.SGD with one group"
        changed = [k for k, v in _SGD_DEFAULTS.items() if groups[0].get(k, v) != v]
        if changed:
            return f"its SGD sets {', '.join(changed)}"
        criterion = net.criterion_
        if type(criterion) not in (nn.CrossEntropyLoss, nn.MSELoss) or (
            criterion.reduction != "mean"
            or getattr(criterion, "weight", None) is not None
        ):
            return "its criterion is not an unweighted mean cross-entropy or MSE"
    seeds_differ = len({e._rng.get_state()[1].tobytes() for e in estimators}) > 1
    if seeds_differ:
        module = estimators[0].module_
        if X.device.type != "cpu" and _draws_random(module, X):
            return "differently seeded candidates draw their own masks, on the CPU only"
        from ._network import _batched_plan

        if _batched_plan(module) is None and _draws_random(module, X):
            return (
                "differently seeded candidates draw their own random masks, which "
                "vmap cannot do for this module (MLPs and nn.Sequential can)"
            )
    return None


def _draws_random(module, X):
    """Whether a training forward pass of ``module`` draws random numbers."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    training = module.training
    module.train()
    try:
        with torch.no_grad():
            module(X[:2])
        drew = not torch.equal(cpu, torch.get_rng_state()) or (
            cuda is not None
            and any(
                not torch.equal(a, b)
                for a, b in zip(cuda, torch.cuda.get_rng_state_all(), strict=True)
            )
        )
    finally:
        module.train(training)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
    return drew


def _stacked_bytes(estimator):
    """Bytes of one candidate's share of a stack: about six parameter copies."""
    params = list(estimator.module_.parameters())
    return 6 * sum(p.numel() * p.element_size() for p in params) or 1
