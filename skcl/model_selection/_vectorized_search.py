"""The searches' vectorized path: groups of candidates trained as one network.

scikit-learn's ``evaluate_candidates`` fits each (candidate, fold) alone.
When candidates can share a network, :func:`evaluate_grouped` fits each
(group, fold) with :func:`skcl._engine.fit_together` in joblib workers
and scores every candidate with scikit-learn's own ``_fit_and_score`` on its
already fitted estimator; ``evaluate_candidates`` then runs on placeholders
(no training, no scoring), on the same folds, so that its bookkeeping
(``cv_results_``, refit, callbacks) stays scikit-learn's, and the search's
``_format_results`` puts the real results in their place. With
``vectorize=True``, :func:`group_reason` first builds each group's networks
(on copies, with no training), so that a group that could not stack is
refused before any candidate trains.

Nothing there is matched by position alone: each placeholder names its
candidate (:class:`Placeholder`), each result the candidate and fold it was
fitted for (its ``WHERE`` entry, set where the estimator was built from the
candidate's parameters), and :func:`splice` checks both before a result
replaces a placeholder.
"""

import time

from joblib import delayed
from sklearn.base import clone
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import _safe_indexing

from .._engine import fit_together, stacking_key
from .._engine._fit import differences, runtime_reason

# Parameters that the search adds to every candidate (see _SearchedEstimator).
DEVICE, N_THREADS, OUTCOME = "skcl_device", "skcl_n_threads", "skcl_outcome"
# The entry of a group's result that names its (candidate, fold).
WHERE = "skcl_candidate_fold"


class Placeholder:
    """The outcome of a candidate trained and scored in a group: no fit, no score.

    It names the candidate (its index among all the search's candidates), so
    that the row scikit-learn gives it can be checked at the splice.
    """

    __slots__ = ("candidate",)

    def __init__(self, candidate):
        self.candidate = candidate

    def __repr__(self):
        return f"Placeholder({self.candidate})"


class SpliceError(RuntimeError):
    """A group's result met the row of another candidate or fold (an skcl bug)."""


def _splice_error(what):
    return SpliceError(
        f"Internal error of skcl's search: {what}. The search stopped rather "
        "than report a result under another candidate or fold; please report "
        "this bug with the search's parameters."
    )


def splice(candidate_params, n_splits, out, results):
    """Return ``out`` with the group results in place of their placeholders.

    ``candidate_params`` and ``out`` are what scikit-learn's
    ``evaluate_candidates`` passes to ``_format_results``: every candidate
    so far, and their ``_fit_and_score`` results, fold after fold for each
    candidate in turn. ``results`` maps a candidate index to its group
    results, one per fold. Every result must name the candidate and fold of
    the row it replaces, every such row must hold that candidate's
    placeholder (with as many test samples), and every placeholder must be
    replaced: anything else raises :class:`SpliceError`, naming both.
    """
    out = list(out)
    placeholders = set()
    for row, params in enumerate(candidate_params):
        placeholder = params.get(OUTCOME)
        if not isinstance(placeholder, Placeholder):
            continue
        if placeholder.candidate != row:
            raise _splice_error(
                f"the placeholder of candidate {placeholder.candidate} is in "
                f"the row of candidate {row}"
            )
        if row not in results:
            raise _splice_error(f"candidate {row} has no group result")
        placeholders.add(row)
    for candidate, outs in results.items():
        if candidate not in placeholders:
            raise _splice_error(
                f"the group results of candidate {candidate} have no placeholder "
                "to replace"
            )
        if len(outs) != n_splits:
            raise _splice_error(
                f"candidate {candidate} has {len(outs)} group results for "
                f"{n_splits} folds"
            )
        for fold, result in enumerate(outs):
            where = result.get(WHERE) if isinstance(result, dict) else None
            if where != (candidate, fold):
                raise _splice_error(
                    f"the result of {_name(where)} reached the row of candidate "
                    f"{candidate}, fold {fold}"
                )
            position = candidate * n_splits + fold
            if result["n_test_samples"] != out[position]["n_test_samples"]:
                raise _splice_error(
                    f"the result of candidate {candidate}, fold {fold} was scored "
                    f"on {result['n_test_samples']} samples, its row on "
                    f"{out[position]['n_test_samples']}"
                )
            out[position] = {k: v for k, v in result.items() if k != WHERE}
    return out


def _name(where):
    if isinstance(where, tuple) and len(where) == 2:
        return f"candidate {where[0]}, fold {where[1]}"
    return f"an unnamed candidate and fold ({where!r})"


def plan_groups(estimator, candidate_params, routed_fit_params):
    """Group the candidates that can train as one network.

    Returns the groups (lists of candidate indices, in order of their first
    candidate), per candidate trained alone the reason, and the indices of
    the candidates that cannot train stacked at all (not only apart from the
    others).
    """
    extra = sorted(set(routed_fit_params) - {"task_id"})
    keys, reasons = [], {}
    for i, params in enumerate(candidate_params):
        if extra:
            key, reason = None, f"the fit gets parameters other than task_id: {extra}"
        else:
            key, reason = stacking_key(
                clone(estimator).set_params(**own_params(params))
            )
        keys.append(key)
        if reason is not None:
            reasons[i] = reason
    groups = []
    for i, key in enumerate(keys):
        group = next((g for g in groups if key is not None and keys[g[0]] == key), None)
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    for group in groups:
        i = group[0]
        if len(group) > 1 or i in reasons:
            continue
        other = next(
            (j for j, key in enumerate(keys) if j != i and key is not None), None
        )
        reasons[i] = (
            "no other candidate can share its network"
            if other is None
            else "it differs from the other candidates in a parameter that builds "
            f"or trains the network ({', '.join(differences(keys[other], keys[i]))})"
        )
    return groups, reasons, {i for i, key in enumerate(keys) if key is None}


def own_params(params):
    """The candidate's parameters, without those the search adds."""
    return {k: v for k, v in params.items() if k not in (DEVICE, N_THREADS, OUTCOME)}


def balanced_tasks(groups, n_splits, n_workers):
    """Return the (members, split) tasks, largest first, for ``n_workers``.

    When the tasks do not divide evenly among the workers, the groups of the
    last ones are cut into one part per worker, so that no worker is left
    with a whole group to train after the others are done.
    """
    tasks = sorted(
        ((members, split) for members in groups for split in range(n_splits)),
        key=lambda task: -len(task[0]),
    )
    remainder = len(tasks) % n_workers if n_workers > 1 else 0
    if not remainder:
        return tasks
    head, tail = tasks[:-remainder], tasks[-remainder:]
    for members, split in tail:
        parts = min(n_workers, len(members))
        head += [(members[p::parts], split) for p in range(parts)]
    return head


def evaluate_grouped(
    estimator,
    X,
    y,
    candidate_params,
    tasks,
    splits,
    fit_and_score_kwargs,
    *,
    parallel,
    insert_error_scores,
    first_candidate=0,
):
    """Fit and score every (group, fold) task; return each candidate's results.

    ``estimator`` is the searched estimator (a :class:`_SearchedEstimator`).
    Returns the ``_fit_and_score`` results of each candidate index, one per
    fold in order, each naming in ``WHERE`` the candidate (its index plus
    ``first_candidate``: its index among all the search's candidates) and
    the fold it was fitted for, and the reason why a group's candidates trained one by
    one after all (found once their networks were built). Failures are
    warned about (or raised) as scikit-learn's ``evaluate_candidates`` does;
    ``insert_error_scores`` (a callable ``scoring``) fills the failed fits'
    scores in as it does.
    """
    outputs = parallel(
        delayed(_fit_and_score_group)(
            estimator,
            X,
            y,
            split,
            *splits[split],
            [(first_candidate + i, candidate_params[i]) for i in members],
            fit_and_score_kwargs,
        )
        for members, split in tasks
    )
    results, reasons = {}, {}
    for (members, split), (outs, reason) in zip(tasks, outputs, strict=True):
        for i, out in zip(members, outs, strict=True):
            results.setdefault(i, [None] * len(splits))[split] = out
            if reason is not None:
                reasons[i] = reason
    flat = [out for i in sorted(results) for out in results[i]]
    _warn_or_raise_about_fit_failures(flat, fit_and_score_kwargs["error_score"])
    if insert_error_scores:
        _insert_error_scores(flat, fit_and_score_kwargs["error_score"])
    return results, reasons


def _fit_and_score_group(estimator, X, y, split, train, test, members, kwargs):
    """Fit ``members`` (candidate, params) on fold ``split`` together; score each.

    Each result names, in ``WHERE``, the candidate whose parameters built
    its estimator and the fold.
    """
    from ._base_search import _torch_threads

    if len(members) == 1:
        candidate, params = members[0]
        out = _fit_and_score(
            clone(estimator).set_params(**params),
            X,
            y,
            train=train,
            test=test,
            parameters=params,
            **kwargs,
        )
        out[WHERE] = (candidate, split)
        return [out], None
    threads = members[0][1].get(N_THREADS)
    estimators = _group_estimators(estimator, [params for _, params in members])
    task_id = _safe_indexing(kwargs["fit_params"]["task_id"], train)
    with _torch_threads(threads):
        start = time.perf_counter()
        outcomes, reason = fit_together(
            estimators, _safe_indexing(X, train), _safe_indexing(y, train), task_id
        )
        fit_time = (time.perf_counter() - start) / len(members)
    outs = []
    for (candidate, params), outcome in zip(members, outcomes, strict=True):
        fitted = clone(estimator).set_params(**params)
        if isinstance(outcome, BaseException):
            fitted.set_params(**{OUTCOME: outcome})
        else:
            fitted.estimator = outcome
            fitted.set_params(**{OUTCOME: "fitted"})
        out = _fit_and_score(
            fitted, X, y, train=train, test=test, parameters=params, **kwargs
        )
        out["fit_time"] = fit_time
        out[WHERE] = (candidate, split)
        outs.append(out)
    return outs, reason


def _group_estimators(estimator, members_params):
    """The estimators of a group's candidates, unfitted, on the group's device."""
    device = members_params[0].get(DEVICE)
    estimators = [
        clone(estimator.estimator).set_params(**own_params(params))
        for params in members_params
    ]
    if device is not None:
        from ._base_search import _on_device

        estimators = [_on_device(e, device) for e in estimators]
    return estimators


def group_reason(estimator, X, y, candidate_params, tasks, splits, fit_params):
    """The first candidate of a group that would train one by one, and why.

    Each group of the ``(members, split)`` tasks is checked as
    :func:`_fit_and_score_group` would fit it, on the training rows of the
    first fold, with :func:`skcl._engine._fit.runtime_reason`: its
    networks are built (on copies), none trains. Returns ``(index,
    reason)``, ``index`` a candidate's among ``candidate_params``, or None.
    """
    from ._base_search import _torch_threads

    train, _ = splits[0]
    X, y = _safe_indexing(X, train), _safe_indexing(y, train)
    task_id = _safe_indexing(fit_params["task_id"], train)
    seen = set()
    for members, _ in tasks:
        if len(members) < 2 or tuple(members) in seen:
            continue
        seen.add(tuple(members))
        params = [candidate_params[i] for i in members]
        with _torch_threads(params[0].get(N_THREADS)):
            reason = runtime_reason(_group_estimators(estimator, params), X, y, task_id)
        if reason is not None:
            return members[0], reason
    return None


class FixedSplits:
    """The folds of one ``split`` call, given again at every call."""

    def __init__(self, splits):
        self.splits = splits

    def split(self, X=None, y=None, groups=None, **params):
        yield from self.splits

    def get_n_splits(self, X=None, y=None, groups=None, **params):
        return len(self.splits)
