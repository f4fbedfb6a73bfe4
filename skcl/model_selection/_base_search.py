"""Machinery shared by RegimeSearchCV and RandomizedRegimeSearchCV.

They run on scikit-learn's own ``BaseSearchCV.fit``, with what they add injected
where scikit-learn lets a subclass in: ``fit`` (metadata routing of ``task_id``),
``_get_scorers`` (the continual scorers), ``_run_search`` (each candidate's
device and torch threads, applied by :class:`_SearchedEstimator`) and
``_format_results`` (per-candidate failure warnings, and the vectorized
path's results, checked against the candidate and fold of their row). A fit
that fails or is interrupted, in the search or in the refit, leaves the
search as it was.
"""

import contextlib
import inspect
import numbers
import threading
import types
import warnings

import torch
from joblib import Parallel, cpu_count, effective_n_jobs, parallel_config
from sklearn import config_context
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import get_tags
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metadata_routing import (
    MetadataRequest,
    get_routing_for_object,
    process_routing,
)
from sklearn.utils.validation import _num_samples, check_is_fitted

from .._tasks import check_task_id
from ..metrics import get_continual_scorer, get_continual_scorer_names
from ..metrics._scorer import _ContinualScorer
from ._task_kfold import TaskKFold
from ._vectorized_search import (
    DEVICE,
    N_THREADS,
    OUTCOME,
    FixedSplits,
    Placeholder,
    balanced_tasks,
    evaluate_grouped,
    group_reason,
    own_params,
    plan_groups,
    splice,
)

_DEFAULT_SCORING = (
    "average_accuracy",
    "neg_forgetting",
    "backward_transfer",
    "learning_accuracy",
)


def _resolve_scorer(scoring):
    """Return the scorer named ``scoring``: a continual scorer or scikit-learn's."""
    if callable(scoring):
        return scoring
    if isinstance(scoring, str):
        if scoring in get_continual_scorer_names():
            return get_continual_scorer(scoring)
        if scoring in get_scorer_names():
            return get_scorer(scoring)
    raise ValueError(
        f"scoring {scoring!r} is neither a continual scorer name "
        f"{get_continual_scorer_names()} nor a scikit-learn scorer name "
        "(sklearn.metrics.get_scorer_names()), nor a callable. Forgetting is "
        "scored as 'neg_forgetting'."
    )


@contextlib.contextmanager
def _torch_threads(n_threads):
    """Run the block with ``n_threads`` torch threads (if not None), then restore."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _device_params(estimator):
    """Names of the ``device`` parameters of ``estimator``, nested ones included."""
    return [
        name
        for name in estimator.get_params(deep=True)
        if name == "device" or name.endswith("__device")
    ]


def _on_device(estimator, device):
    """Set every ``device`` parameter of ``estimator`` to ``device`` if not None."""
    if device is None:
        return estimator
    return estimator.set_params(**dict.fromkeys(_device_params(estimator), device))


class _SearchedEstimator(BaseEstimator):
    """The searched estimator, fitted on a device with a bounded number of threads.

    ``BaseSearchCV.fit`` clones the search's ``estimator``, sets a candidate's
    parameters on the clone and fits and scores it in a joblib worker: only the
    estimator's own methods run there around the fit. So, while a search fits,
    its ``estimator`` is this thin wrapper. ``set_params`` passes the candidate's
    parameters on, except ``skcl_device`` and ``skcl_n_threads``, which the
    search adds to every candidate; ``fit`` sets the wrapped estimator's device
    parameters and fits it with that many torch threads, restored afterwards;
    :class:`_TaskScorer` scores it with as many. joblib's and threadpoolctl's
    thread limits would not do: the sequential and Dask backends set none, and
    torch's thread count is its own (``torch.set_num_threads``).

    ``skcl_outcome`` is set by the vectorized path: ``"fitted"`` (the wrapped
    estimator was trained with its group: ``fit`` does nothing), an
    exception (its training failed: ``fit`` raises it) or a
    :class:`~skcl.model_selection._vectorized_search.Placeholder` (trained
    and scored elsewhere: ``fit`` does nothing and the scorers score 0).
    """

    def __init__(
        self, estimator, skcl_device=None, skcl_n_threads=None, skcl_outcome=None
    ):
        self.estimator = estimator
        self.skcl_device = skcl_device
        self.skcl_n_threads = skcl_n_threads
        self.skcl_outcome = skcl_outcome

    def set_params(self, **params):
        for name in (DEVICE, N_THREADS, OUTCOME):
            if name in params:
                setattr(self, name, params.pop(name))
        if params:
            self.estimator.set_params(**params)
        return self

    def fit(self, X, y=None, **params):
        outcome = self.skcl_outcome
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None:
            return self
        args = (X,) if y is None else (X, y)
        with _torch_threads(self.skcl_n_threads):
            _on_device(self.estimator, self.skcl_device).fit(*args, **params)
        return self

    def get_metadata_routing(self):
        return get_routing_for_object(self.estimator)

    def __sklearn_tags__(self):
        return get_tags(self.estimator)


class _MatrixMemo:
    """The last accuracy matrix computed, shared by the scorers of one search.

    The continual scorers of a multi-metric search are called one after the
    other on the same estimator and fold: the first computes the accuracy
    matrix, the others reuse it. The memo holds what it was computed from,
    so that none of those objects can be freed and its ``id`` reused, one
    entry per thread (joblib's threading backend scores fits side by side).
    """

    def __init__(self):
        self._last = threading.local()

    def get(self, scorer, estimator, X, y, task_id):
        key = (estimator, X, y, task_id, scorer._scoring)
        last = getattr(self._last, "entry", None)
        if last is None or any(a is not b for a, b in zip(last[0], key, strict=True)):
            self._last.entry = None
            last = self._last.entry = (
                key,
                scorer._accuracy_matrix(estimator, X, y, task_id),
            )
        return last[1]

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self._last = threading.local()


class _TaskScorer:
    """Give a scorer the task ids of the samples it scores, if it takes them.

    Scorers with a ``task_id`` parameter (the continual scorers) get them;
    others, e.g. scikit-learn's, are called as ``scorer(estimator, X, y)``. A
    candidate of the search is scored with its number of torch threads.
    Continual scorers sharing a ``memo`` compute one accuracy matrix per
    estimator and fold.
    """

    def __init__(self, scorer, memo=None):
        self.scorer = scorer
        self.memo = memo
        self._takes_task_id = "task_id" in inspect.signature(scorer).parameters

    def __call__(self, estimator, X, y=None, *, task_id=None):
        if isinstance(estimator, _SearchedEstimator):
            if isinstance(estimator.skcl_outcome, Placeholder):
                return 0.0
            with _torch_threads(estimator.skcl_n_threads):
                return self(estimator.estimator, X, y, task_id=task_id)
        if (
            self.memo is not None
            and isinstance(self.scorer, _ContinualScorer)
            and task_id is not None
        ):
            R = self.memo.get(self.scorer, estimator, X, y, task_id)
            return self.scorer._score_matrix(R, estimator, X, y, task_id)
        if self._takes_task_id:
            return self.scorer(estimator, X, y, task_id=task_id)
        return self.scorer(estimator, X, y)

    def __repr__(self):
        return repr(self.scorer)

    def get_metadata_routing(self):
        request = MetadataRequest(owner=self)
        request.score.add_request(param="task_id", alias=True)
        return request


class _BaseRegimeSearch(BaseSearchCV):
    """Cross-validated search of training regimes, scored on the continual protocol.

    Subclasses also derive from :class:`~sklearn.model_selection.GridSearchCV`
    or :class:`~sklearn.model_selection.RandomizedSearchCV`, whose
    ``_run_search`` gives the candidates.
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "scoring": [str, callable, list, tuple, dict, None],
        "devices": [StrOptions({"auto"}), list, tuple, None],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "vectorize": [StrOptions({"auto"}), "boolean"],
    }

    def _get_scorers(self):
        scoring = _DEFAULT_SCORING if self.scoring is None else self.scoring
        if isinstance(scoring, str) or callable(scoring):
            return _TaskScorer(_resolve_scorer(scoring)), "score"
        if isinstance(scoring, (list, tuple)):
            if not scoring or len(set(scoring)) != len(scoring):
                raise ValueError(
                    "scoring must be a non-empty list of distinct names, got "
                    f"{scoring!r}."
                )
            scoring = {name: name for name in scoring}
        if not scoring or not all(isinstance(name, str) for name in scoring):
            raise ValueError(
                f"scoring must be a non-empty dict with str keys, got {scoring!r}."
            )
        memo = _MatrixMemo()
        scorers = {
            name: _TaskScorer(_resolve_scorer(value), memo)
            for name, value in scoring.items()
        }
        self._check_refit_for_multimetric(scorers)
        return (
            _MultimetricScorer(scorers=scorers, raise_exc=self.error_score == "raise"),
            self.refit,
        )

    def _check_devices(self):
        """Return the devices to assign candidates to, or None."""
        if self.devices is None:
            return None
        if self.devices == "auto":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            devices = [f"cuda:{i}" for i in range(count)] or ["cpu"]
        elif (
            isinstance(self.devices, (list, tuple))
            and self.devices
            and all(isinstance(device, (str, torch.device)) for device in self.devices)
        ):
            devices = [str(device) for device in self.devices]
        else:
            raise ValueError(
                "devices must be None, 'auto' or a non-empty list of device names "
                f"such as ['cuda:0', 'cuda:1'], got {self.devices!r}."
            )
        if not _device_params(self.estimator):
            raise ValueError(
                "devices were given but the estimator has no 'device' parameter to set."
            )
        return devices

    def fit(self, X, y=None, *, task_id=None, groups=None, **params):
        """Run the search: fit and score every candidate on every fold.

        Each candidate trains on the whole stream of every training fold (all
        the tasks, in order) and is scored on the test fold; the scorers that
        take task ids (the continual scorers) get those of the test fold.
        This is scikit-learn's ``BaseSearchCV.fit``, run with metadata routing
        enabled, so that ``task_id`` reaches the estimator (also inside a
        meta-estimator such as a :class:`~sklearn.pipeline.Pipeline`), the
        task-aware splitters and the continual scorers.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The stream's inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Its targets.
        task_id : array-like of shape (n_samples,), int or str, default=None
            The task of each sample. None means a single task.
        groups : array-like of shape (n_samples,), default=None
            Group labels for a ``cv`` splitter that requests them (such as
            :class:`~sklearn.model_selection.GroupKFold`). The task-aware
            splitters get ``task_id`` and need no groups.
        **params : dict
            Further parameters of the estimator's ``fit``, routed to it when it
            requests them.

        Returns
        -------
        self : object
            The fitted search.

        Notes
        -----
        The fit is a transaction: if it raises or is interrupted (also
        during the refit, e.g. by a ``KeyboardInterrupt``), the search keeps
        the fitted attributes it had (``best_estimator_``, ``best_params_``,
        ``cv_results_``, ...), or has none if it had none.
        """
        params = {"task_id": check_task_id(task_id, _num_samples(X)), **params}
        if groups is not None:
            params["groups"] = groups
        # BaseSearchCV.fit builds its joblib Parallel itself, so the only
        # progress report that can reach it is joblib's own (its verbose
        # setting): a tqdm bar would need a hook at each fit's end in the main
        # process, which only a fork of fit has.
        progress = (
            parallel_config(verbose=min(9 + self.verbose, 49))
            if self.verbose
            else contextlib.nullcontext()
        )
        with self._kept_on_failure():
            with config_context(enable_metadata_routing=True), progress:
                with self._searching(X, y, groups, params):
                    super().fit(X, y, **params)
            # scikit-learn refitted the wrapper: keep what it wraps.
            if isinstance(getattr(self, "best_estimator_", None), _SearchedEstimator):
                self.best_estimator_ = self.best_estimator_.estimator
                if hasattr(self.best_estimator_, "feature_names_in_"):
                    self.feature_names_in_ = self.best_estimator_.feature_names_in_
            self.scorer_ = (
                {name: scorer.scorer for name, scorer in self.scorer_.items()}
                if isinstance(self.scorer_, dict)
                else self.scorer_.scorer
            )
        return self

    @contextlib.contextmanager
    def _kept_on_failure(self):
        """Put the search back as it was if the block raises or is interrupted.

        scikit-learn's fit sets ``best_index_``, ``best_params_`` and the
        unfitted ``best_estimator_`` (here the private wrapper) before the
        refit, and other attributes before or after it: an interrupted refit
        would leave a mix of two fits and a wrapper in place of the estimator.
        The fit changes only attributes of the search itself (the previous
        ``best_estimator_`` is replaced, never refitted), so keeping them is
        enough to undo it.
        """
        previous = dict(vars(self))
        try:
            yield
        except BaseException:
            vars(self).clear()
            vars(self).update(previous)
            raise

    @contextlib.contextmanager
    def _searching(self, X, y, groups, params):
        """Make ``estimator`` and ``cv`` what scikit-learn's fit is to use.

        ``estimator`` becomes the :class:`_SearchedEstimator` around it, on
        ``devices[0]`` for the refit; ``cv`` the splitter (a
        :class:`TaskKFold` for None or an int). Both are restored on exit.
        """
        estimator, cv = self.estimator, self.cv
        devices = self._check_devices()
        checked_cv = check_cv(
            TaskKFold(5 if cv is None else cv)
            if cv is None or isinstance(cv, numbers.Integral)
            else cv,
            y,
            classifier=is_classifier(estimator),
        )
        self._search_state = types.SimpleNamespace(
            devices=devices,
            device_params=_device_params(estimator) if devices else [],
            n_splits=checked_cv.get_n_splits(X, y, groups),
            n_candidates=0,
            n_reported=0,
            X=X,
            y=y,
            fit_params=params,
            results={},
            n_groups=0,
        )
        self.estimator = _SearchedEstimator(
            estimator, skcl_device=devices[0] if devices else None
        )
        self.cv = checked_cv
        try:
            yield
        finally:
            self.estimator, self.cv = estimator, cv
            del self._search_state

    def _threads_per_fit(self, n_fits):
        """Torch threads of each fit: the CPUs divided among the concurrent fits."""
        if self.n_threads is not None:
            return self.n_threads
        n_workers = max(1, min(effective_n_jobs(self.n_jobs), n_fits))
        return max(1, min(torch.get_num_threads(), cpu_count() // n_workers))

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        """Search the parent's candidates, each with its device and thread count.

        scikit-learn >= 1.9 passes its callback context (it looks for the
        ``callback_ctx`` parameter); it goes on to the parent's ``_run_search``
        and from there, untouched, to ``evaluate_candidates``.
        """
        state = self._search_state

        def evaluate(candidate_params, cv=None, more_results=None, **kwargs):
            candidate_params = list(candidate_params)
            if any(name in state.device_params for p in candidate_params for name in p):
                raise ValueError(
                    "devices cannot be combined with a search over the device."
                )
            more_results = dict(more_results or {})
            groups = [[i] for i in range(len(candidate_params))]
            if self.vectorize is not False:
                routed = process_routing(self, "fit", **state.fit_params)
                groups = self._plan_groups(candidate_params, routed, more_results)
            vectorized = any(len(members) > 1 for members in groups)
            n_workers = max(1, effective_n_jobs(self.n_jobs))
            tasks = balanced_tasks(groups, state.n_splits, n_workers)
            n_threads = self._threads_per_fit(len(tasks))
            candidate_params = [
                {**params, N_THREADS: n_threads} for params in candidate_params
            ]
            if state.devices:
                more_results["device"] = [None] * len(candidate_params)
                for g, members in enumerate(groups, state.n_groups):
                    for i in members:
                        device = state.devices[g % len(state.devices)]
                        candidate_params[i][DEVICE] = more_results["device"][i] = device
            state.n_groups += len(groups)
            if vectorized:
                cv = self._evaluate_grouped(
                    candidate_params, cv, routed, tasks, more_results
                )
                # Each row of scikit-learn's results names its candidate, for
                # the check where the group results replace these rows.
                candidate_params = [
                    {**params, OUTCOME: Placeholder(state.n_candidates + i)}
                    for i, params in enumerate(candidate_params)
                ]
            state.n_candidates += len(candidate_params)
            return evaluate_candidates(
                candidate_params, cv=cv, more_results=more_results or None, **kwargs
            )

        kwargs = {} if callback_ctx is None else {"callback_ctx": callback_ctx}
        super()._run_search(evaluate, **kwargs)

    def _plan_groups(self, candidate_params, routed, more_results):
        """Group the candidates that can share a network; record why others not."""
        state = self._search_state
        groups, reasons, unkeyed = plan_groups(
            self.estimator.estimator, candidate_params, routed.estimator.fit
        )
        unstackable = {i: r for i, r in reasons.items() if i in unkeyed}
        if self.vectorize is True and unstackable:
            i, reason = next(iter(unstackable.items()))
            raise ValueError(
                f"vectorize=True, but the candidate {candidate_params[i]} cannot "
                f"train in a group: {reason}. With vectorize='auto' such "
                "candidates train one by one."
            )
        group_of = {i: g for g, members in enumerate(groups) for i in members}
        more_results["vectorized_group"] = [
            state.n_groups + group_of[i] if len(groups[group_of[i]]) > 1 else -1
            for i in range(len(candidate_params))
        ]
        more_results["vectorize_fallback"] = [
            reasons.get(i, "") for i in range(len(candidate_params))
        ]
        return groups

    def _evaluate_grouped(self, candidate_params, cv, routed, tasks, more_results):
        """Fit and score the tasks; return the folds they used, as a splitter.

        The candidates of a group that trained one by one after all get their
        reason in ``more_results``.
        """
        state = self._search_state
        X, y = state.X, state.y
        splits = list((cv or self.cv).split(X, y, **routed.splitter.split))
        if self.vectorize is True:
            # Refused before any candidate trains, for a reason found once
            # the networks are built (on copies, on the first fold).
            found = group_reason(
                self.estimator,
                X,
                y,
                candidate_params,
                tasks,
                splits,
                routed.estimator.fit,
            )
            if found is not None:
                i, reason = found
                params = own_params(candidate_params[i])
                raise ValueError(
                    f"vectorize=True, but the candidate {params} could not train "
                    f"in a group: {reason}."
                )
        scorers, _ = self._get_scorers()
        fit_and_score_kwargs = dict(
            scorer=scorers,
            fit_params=routed.estimator.fit,
            score_params=routed.scorer.score,
            return_train_score=self.return_train_score,
            return_n_test_samples=True,
            return_times=True,
            return_parameters=False,
            error_score=self.error_score,
            verbose=self.verbose,
        )
        results, reasons = evaluate_grouped(
            self.estimator,
            X,
            y,
            candidate_params,
            tasks,
            splits,
            fit_and_score_kwargs,
            parallel=Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch),
            insert_error_scores=callable(self.scoring),
            first_candidate=state.n_candidates,
        )
        for i, outs in results.items():
            state.results[state.n_candidates + i] = outs
        for i, reason in reasons.items():
            more_results["vectorized_group"][i] = -1
            more_results["vectorize_fallback"][i] = reason
        if self.vectorize is True and reasons:
            i, reason = next(iter(reasons.items()))
            params = own_params(candidate_params[i])
            raise ValueError(
                f"vectorize=True, but the candidate {params} could not train in "
                f"a group: {reason}."
            )
        return FixedSplits(splits)

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        # scikit-learn's evaluate_candidates calls this with all the candidates
        # and fits so far: the only place where the fits' errors reach a
        # subclass, to warn about each failed candidate with the reason, and
        # where the vectorized path's results replace its placeholders, each
        # checked against the candidate and fold of the row it replaces.
        state = self._search_state
        out = splice(candidate_params, n_splits, out, state.results)
        candidate_params = [own_params(params) for params in candidate_params]
        for i in range(state.n_reported, len(candidate_params)):
            errors = [
                result["fit_error"]
                for result in out[i * n_splits : (i + 1) * n_splits]
                if result["fit_error"] is not None
            ]
            if errors:
                reason = errors[-1].strip().splitlines()[-1]
                warnings.warn(
                    f"The candidate {candidate_params[i]} failed on {len(errors)} of "
                    f"{n_splits} folds and is scored error_score={self.error_score}: "
                    f"{reason}",
                    FitFailedWarning,
                    stacklevel=2,
                )
        state.n_reported = len(candidate_params)
        return super()._format_results(candidate_params, n_splits, out, more_results)

    def score(self, X, y=None, *, task_id=None):
        """Score the refitted best estimator on held-out data.

        Uses the scorer that chose it (``refit``): with the default scoring,
        the average accuracy over the tasks of ``task_id``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Held-out inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Their targets.
        task_id : array-like of shape (n_samples,), int or str, default=None
            The task of each sample; None means a single task.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        if not self.refit:
            raise AttributeError(
                f"This {type(self).__name__} was initialized with refit=False: score "
                "is only available after refitting on the best parameters."
            )
        scorer = self.scorer_[self.refit] if self.multimetric_ else self.scorer_
        task_id = check_task_id(task_id, _num_samples(X))
        return _TaskScorer(scorer)(self.best_estimator_, X, y, task_id=task_id)
