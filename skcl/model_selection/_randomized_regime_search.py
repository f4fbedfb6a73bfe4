import numpy as np
from sklearn.model_selection import RandomizedSearchCV

from ._base_search import _BaseRegimeSearch


class RandomizedRegimeSearchCV(_BaseRegimeSearch, RandomizedSearchCV):
    """Randomized search of training regimes, scored on the continual protocol.

    The :class:`~sklearn.model_selection.RandomizedSearchCV` counterpart of
    :class:`RegimeSearchCV` (and a subclass of ``RandomizedSearchCV``):
    ``n_iter`` candidates are sampled from ``param_distributions`` (lists are
    sampled uniformly, distributions such as ``scipy.stats.loguniform(1e-3, 1)``
    through their ``rvs`` method), then trained on every training fold of the
    stream and scored with the continual metrics, in parallel, exactly as in
    :class:`RegimeSearchCV`.

    Parameters
    ----------
    estimator : estimator object
        A continual estimator, or a meta-estimator around one; ``fit`` must
        take ``task_id``.
    param_distributions : dict or list of dict
        Parameter names mapped to distributions or lists of values, as in
        :class:`~sklearn.model_selection.RandomizedSearchCV`.
    n_iter : int, default=10
        Number of candidates sampled.
    scoring : str, callable, list, tuple, dict or None, default=None
        As in :class:`RegimeSearchCV`; None scores the average accuracy,
        forgetting, backward transfer and learning accuracy.
    n_jobs : int or None, default=None
        Number of fits run in parallel by joblib.
    refit : bool, str or callable, default="average_accuracy"
        As in :class:`RegimeSearchCV`.
    cv : int, cross-validation generator, iterable or None, default=None
        None or an int: a :class:`TaskKFold` with 5 or that many folds.
    verbose : int, default=0
        1 or more reports the progress of the fits, as in
        :class:`RegimeSearchCV`.
    pre_dispatch : int or str, default="2*n_jobs"
        Number of fits dispatched ahead, as in joblib.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampling of the candidates.
    error_score : "raise" or float, default=np.nan
        Score of a candidate on the folds where its fit failed.
    return_train_score : bool, default=False
        Also score the candidates on their training folds.
    devices : list of str, "auto" or None, default=None
        Devices assigned to the candidates round-robin, as in
        :class:`RegimeSearchCV`.
    n_threads : int or None, default=None
        Number of torch threads of each fit; None divides the CPUs by the
        number of fits running at once.

    vectorize : "auto", True or False, default="auto"
        Train the candidates of each fold that differ only in per-candidate
        scalars (``lr``, ``lr_decay``, ``min_lr``, ``momentum``,
        ``random_state``, the optimizer's and the plug-ins'
        hyper-parameters, e.g. ``penalty__lam``; the last step's, for a
        pipeline) as one network with stacked parameters, whose results
        are those of training them one by one (to float rounding).
        ``"auto"`` trains the others one by one and records why in
        ``cv_results_["vectorize_fallback"]``; True raises a ValueError
        instead, before any candidate trains; False trains every candidate
        alone.
    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        The results of every candidate, as in :class:`RegimeSearchCV`.
    best_estimator_ : estimator
        The best candidate refitted on the whole stream (if ``refit``).
    best_score_ : float
        Mean test score of the best candidate on the ``refit`` metric.
    best_params_ : dict
        Parameters of the best candidate.
    best_index_ : int
        Index of the best candidate in ``cv_results_``.
    scorer_ : callable or dict
        The scorer, or the dict of scorers, used on the test folds.
    n_splits_ : int
        Number of folds.
    refit_time_ : float
        Seconds spent refitting the best candidate.
    multimetric_ : bool
        Whether several metrics were scored.

    See Also
    --------
    RegimeSearchCV : Search every candidate of a grid.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import load_digits
    >>> from skcl import ContinualClassifier
    >>> from skcl.model_selection import RandomizedRegimeSearchCV
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = (X[:300] / 16).astype(np.float32), y[:300]
    >>> X, y = np.vstack([X, X[:, ::-1]]), np.tile(y, 2)
    >>> task_id = np.repeat([0, 1], 300)
    >>> clf = ContinualClassifier(max_epochs=1, batch_size=10, random_state=0)
    >>> search = RandomizedRegimeSearchCV(
    ...     clf,
    ...     {"lr": loguniform(1e-3, 1e-1), "lr_decay": [0.5, 1.0]},
    ...     n_iter=3,
    ...     cv=3,
    ...     n_threads=1,
    ...     random_state=0,
    ... )
    >>> search = search.fit(X, y, task_id=task_id)
    >>> len(search.cv_results_["params"]), sorted(search.best_params_)
    (3, ['lr', 'lr_decay'])
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **RandomizedSearchCV._parameter_constraints,
        **_BaseRegimeSearch._parameter_constraints,
    }

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_iter=10,
        scoring=None,
        n_jobs=None,
        refit="average_accuracy",
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        random_state=None,
        error_score=np.nan,
        return_train_score=False,
        devices=None,
        n_threads=None,
        vectorize="auto",
    ):
        super().__init__(
            estimator=estimator,
            param_distributions=param_distributions,
            n_iter=n_iter,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            random_state=random_state,
            return_train_score=return_train_score,
        )
        self.devices = devices
        self.n_threads = n_threads
        self.vectorize = vectorize
