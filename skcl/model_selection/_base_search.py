"""Machinery shared by RegimeSearchCV and RandomizedRegimeSearchCV."""

import contextlib
import inspect
import numbers
import time
import warnings
from collections import defaultdict

import torch
from joblib import cpu_count, effective_n_jobs
from sklearn import config_context
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import indexable
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import (
    _check_method_params,
    _num_samples,
    check_is_fitted,
)
from tqdm.auto import tqdm

from .._base import _check_task_id
from ..metrics import get_continual_scorer, get_continual_scorer_names
from ._task_kfold import TaskKFold

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


class _TaskScorer:
    """Give a scorer the task ids of the samples it scores, if it takes them.

    Scorers with a ``task_id`` parameter (the continual scorers) get them;
    others, e.g. scikit-learn's, are called as ``scorer(estimator, X, y)``.
    """

    def __init__(self, scorer):
        self.scorer = scorer
        self._takes_task_id = "task_id" in inspect.signature(scorer).parameters

    def __call__(self, estimator, X, y=None, *, task_id=None):
        if self._takes_task_id:
            return self.scorer(estimator, X, y, task_id=task_id)
        return self.scorer(estimator, X, y)

    def __repr__(self):
        return repr(self.scorer)

    def get_metadata_routing(self):
        request = MetadataRequest(owner=self)
        request.score.add_request(param="task_id", alias=True)
        return request


class _ProgressParallel(Parallel):
    """scikit-learn's ``Parallel`` with a tqdm progress bar over its tasks."""

    def __init__(self, *, progress, **kwargs):
        super().__init__(**kwargs)
        self.progress = progress

    def __call__(self, iterable):
        iterable = list(iterable)
        with tqdm(
            total=len(iterable), disable=not self.progress, unit="fit"
        ) as self._bar:
            return super().__call__(iterable)

    def print_progress(self):
        self._bar.update(self.n_completed_tasks - self._bar.n)


@contextlib.contextmanager
def _torch_threads(n_threads):
    """Run the block with ``n_threads`` torch threads, then restore the number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fit_and_score_with_threads(estimator, X, y, *, n_threads, **kwargs):
    """scikit-learn's ``_fit_and_score`` with a bounded number of torch threads."""
    with _torch_threads(n_threads):
        return _fit_and_score(estimator, X, y, **kwargs)


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


class _BaseRegimeSearch(BaseSearchCV):
    """Cross-validated search of training regimes, scored on the continual protocol.

    Subclasses define ``__init__`` and ``_run_search``, as scikit-learn's
    searches do.
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **BaseSearchCV._parameter_constraints,
        "scoring": [str, callable, list, tuple, dict, None],
        "devices": [StrOptions({"auto"}), list, tuple, None],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
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
        scorers = {
            name: _TaskScorer(_resolve_scorer(value)) for name, value in scoring.items()
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
        if isinstance(self.devices, str):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            devices = [f"cuda:{i}" for i in range(count)] or ["cpu"]
        elif self.devices and all(
            isinstance(device, (str, torch.device)) for device in self.devices
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

    def _threads_per_job(self, n_fits):
        """Torch threads of each fit: the CPUs divided among the concurrent fits."""
        if self.n_threads is not None:
            return self.n_threads
        n_workers = max(1, min(effective_n_jobs(self.n_jobs), n_fits))
        return max(1, min(torch.get_num_threads(), cpu_count() // n_workers))

    def _split_params(self, cv, task_id, groups):
        params = {} if groups is None else {"groups": groups}
        if "task_id" in inspect.signature(cv.split).parameters:
            params["task_id"] = task_id
        return params

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, *, task_id=None, groups=None, **params):
        """Run the search: fit and score every candidate on every fold.

        Each candidate trains on the whole stream of every training fold (all
        the tasks, in order) and is scored on the test fold; the scorers that
        take task ids (the continual scorers) get those of the test fold.
        Metadata routing is enabled for the duration of the call, so that
        ``task_id`` reaches the continual estimator inside a meta-estimator
        such as a :class:`~sklearn.pipeline.Pipeline`.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The stream's inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Its targets.
        task_id : array-like of shape (n_samples,), int or str, default=None
            The task of each sample. None means a single task.
        groups : array-like of shape (n_samples,), default=None
            Group labels for a ``cv`` splitter that takes them. The task-aware
            splitters get ``task_id`` and need no groups.
        **params : dict
            Further parameters of the estimator's ``fit``.

        Returns
        -------
        self : object
            The fitted search.
        """
        devices = self._check_devices()
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        task_id = _check_task_id(task_id, _num_samples(X))
        fit_params = {**_check_method_params(X, params), "task_id": task_id}
        if self.cv is None or isinstance(self.cv, numbers.Integral):
            self._checked_cv_orig = TaskKFold(5 if self.cv is None else self.cv)
        else:
            self._checked_cv_orig = check_cv(
                self.cv, y, classifier=is_classifier(self.estimator)
            )
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, groups)
        base_estimator = clone(self.estimator)
        parallel = _ProgressParallel(
            n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch, progress=self.verbose
        )
        fit_and_score_kwargs = dict(
            scorer=scorers,
            fit_params=fit_params,
            score_params={"task_id": task_id},
            return_train_score=self.return_train_score,
            return_n_test_samples=True,
            return_times=True,
            return_parameters=False,
            error_score=self.error_score,
            verbose=max(self.verbose - 1, 0),
        )
        all_candidate_params, all_out = [], []
        all_more_results = defaultdict(list)
        results = {}

        def evaluate_candidates(candidate_params, cv=None, more_results=None):
            nonlocal results
            cv = cv or self._checked_cv_orig
            candidate_params = list(candidate_params)
            if devices is not None and any(
                name in _device_params(self.estimator)
                for params in candidate_params
                for name in params
            ):
                raise ValueError(
                    "devices cannot be combined with a search over the device."
                )
            splits = list(cv.split(X, y, **self._split_params(cv, task_id, groups)))
            if len(splits) != self.n_splits_:
                raise ValueError(
                    "cv.split and cv.get_n_splits return inconsistent results: "
                    f"expected {self.n_splits_} splits, got {len(splits)}."
                )
            n_candidates, n_splits = len(candidate_params), len(splits)
            start = len(all_candidate_params)
            assigned = [
                None if devices is None else devices[(start + i) % len(devices)]
                for i in range(n_candidates)
            ]
            n_threads = self._threads_per_job(n_candidates * n_splits)
            # Fold-major order, so that the fits running at once are different
            # candidates, on different devices.
            jobs = [(c, s) for s in range(n_splits) for c in range(n_candidates)]
            out = parallel(
                delayed(_fit_and_score_with_threads)(
                    _on_device(clone(base_estimator), assigned[c]),
                    X,
                    y,
                    train=splits[s][0],
                    test=splits[s][1],
                    parameters=candidate_params[c],
                    split_progress=(s, n_splits),
                    candidate_progress=(c, n_candidates),
                    n_threads=n_threads,
                    **fit_and_score_kwargs,
                )
                for c, s in jobs
            )
            by_job = dict(zip(jobs, out, strict=True))
            out = [by_job[c, s] for c in range(n_candidates) for s in range(n_splits)]
            self._warn_about_failed_candidates(candidate_params, out, n_splits)
            _warn_or_raise_about_fit_failures(out, self.error_score)
            if callable(self.scoring):
                _insert_error_scores(out, self.error_score)
            all_candidate_params.extend(candidate_params)
            all_out.extend(out)
            if devices is not None:
                all_more_results["device"].extend(assigned)
            for key, value in (more_results or {}).items():
                all_more_results[key].extend(value)
            results = self._format_results(
                all_candidate_params, n_splits, all_out, all_more_results
            )
            return results

        with config_context(enable_metadata_routing=True):
            with parallel:
                self._run_search(evaluate_candidates)
            self.multimetric_ = isinstance(all_out[0]["test_scores"], dict)
            if callable(self.scoring) and self.multimetric_:
                self._check_refit_for_multimetric(all_out[0]["test_scores"])
                refit_metric = self.refit
            if self.refit or not self.multimetric_:
                self.best_index_ = self._select_best_index(
                    self.refit, refit_metric, results
                )
                if not callable(self.refit):
                    self.best_score_ = results[f"mean_test_{refit_metric}"][
                        self.best_index_
                    ]
                self.best_params_ = results["params"][self.best_index_]
            if self.refit:
                self.best_estimator_ = _on_device(
                    clone(base_estimator).set_params(
                        **clone(self.best_params_, safe=False)
                    ),
                    devices[0] if devices else None,
                )
                start = time.time()
                args = (X,) if y is None else (X, y)
                self.best_estimator_.fit(*args, **fit_params)
                self.refit_time_ = time.time() - start
                if hasattr(self.best_estimator_, "feature_names_in_"):
                    self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = (
            {name: s.scorer for name, s in scorers._scorers.items()}
            if isinstance(scorers, _MultimetricScorer)
            else scorers.scorer
        )
        self.cv_results_ = results
        return self

    def _warn_about_failed_candidates(self, candidate_params, out, n_splits):
        for i, params in enumerate(candidate_params):
            errors = [
                result["fit_error"]
                for result in out[i * n_splits : (i + 1) * n_splits]
                if result["fit_error"] is not None
            ]
            if errors:
                reason = errors[-1].strip().splitlines()[-1]
                warnings.warn(
                    f"The candidate {params} failed on {len(errors)} of {n_splits} "
                    f"folds and is scored error_score={self.error_score}: {reason}",
                    FitFailedWarning,
                    stacklevel=4,
                )

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
        task_id = _check_task_id(task_id, _num_samples(X))
        return _TaskScorer(scorer)(self.best_estimator_, X, y, task_id=task_id)
