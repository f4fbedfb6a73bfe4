import numpy as np
from sklearn.model_selection import GridSearchCV

from ._base_search import _BaseRegimeSearch


class RegimeSearchCV(_BaseRegimeSearch, GridSearchCV):
    """Exhaustive search of training regimes, scored on the continual protocol.

    A :class:`~sklearn.model_selection.GridSearchCV` for continual learners (a
    subclass of it, fitted by scikit-learn's own ``fit``). Each candidate (a
    point of ``param_grid``: learning rate and its per-task decay, batch size,
    dropout, epochs per task, penalty and its strength, or any other parameter
    of the estimator) is trained on the whole stream of every training fold,
    task after task, and scored on the test fold with the continual metrics of
    :mod:`skcl.metrics`: by default the average accuracy, the forgetting, the
    backward transfer and the learning accuracy, all in ``cv_results_``,
    refitting the candidate of best average accuracy. The folds hold out part of
    every task (:class:`TaskKFold`), so every candidate is scored on every task
    after every task.

    The fits run in parallel through joblib (``n_jobs``) with whatever backend
    is active: the default process pool, or a Dask cluster inside
    ``with joblib.parallel_backend("dask"):``. Each fit runs with a bounded
    number of torch threads (``n_threads``) so that parallel fits do not
    oversubscribe the CPUs, and candidates can be spread over several GPUs
    (``devices``). A candidate whose fit fails, e.g. because its training
    diverged, is scored ``error_score`` with a warning naming its parameters,
    and the search goes on.

    Parameters
    ----------
    estimator : estimator object
        A continual estimator, e.g. :class:`~skcl.ContinualClassifier`, or a
        meta-estimator (such as a pipeline) around one; ``fit`` must take
        ``task_id``.
    param_grid : dict or list of dict
        Parameter names (as in ``estimator.set_params``, e.g. ``"lr"``,
        ``"lr_decay"``, ``"module__dropout"``, ``"penalty"``,
        ``"penalty__lam"``) mapped to lists of values, or a list of such
        dicts, as in :class:`~sklearn.model_selection.GridSearchCV`.
    scoring : str, callable, list, tuple, dict or None, default=None
        How candidates are scored on a test fold. Names are continual scorer
        names (see :func:`~skcl.metrics.get_continual_scorer_names`) or
        scikit-learn scorer names; callables are scorers
        ``scorer(estimator, X, y)``, which get the fold's task ids as
        ``task_id=`` when they take that argument. A list or dict gives
        several metrics. None scores ``"average_accuracy"``,
        ``"neg_forgetting"``, ``"backward_transfer"`` and
        ``"learning_accuracy"``.
    n_jobs : int or None, default=None
        Number of fits run in parallel by joblib. None means 1 unless in a
        :func:`joblib.parallel_backend` context; -1 means all processors (or
        all Dask workers).
    refit : bool, str or callable, default="average_accuracy"
        Refit the best candidate on the whole stream, as ``best_estimator_``:
        with several metrics, the name of the one that chooses it (or a
        callable choosing the index from ``cv_results_``); with a single
        metric, any true value refits on it. False skips the refit.
    cv : int, cross-validation generator, iterable or None, default=None
        None or an int: a :class:`TaskKFold` with 5 or that many folds,
        stratified by class for classifiers. The splitter gets what it
        requests through scikit-learn's metadata routing: a task-aware
        splitter the task ids as ``task_id``, a group splitter (such as
        :class:`~sklearn.model_selection.GroupKFold`) the ``groups`` given to
        :meth:`fit`.
    verbose : int, default=0
        1 or more reports the progress of the fits (joblib's messages on
        stderr: fits done out of the total, time elapsed and remaining); 2 or
        more reports every fit and prints scikit-learn's per-fit messages.
    pre_dispatch : int or str, default="2*n_jobs"
        Number of fits dispatched ahead, as in joblib.
    error_score : "raise" or float, default=np.nan
        Score of a candidate on the folds where its fit failed (for instance
        a ``FloatingPointError`` of a diverged training); "raise" raises.
    return_train_score : bool, default=False
        Also score the candidates on their training folds.
    devices : list of str, "auto" or None, default=None
        Devices to train on, e.g. ``["cuda:0", "cuda:1"]``: candidate ``i``
        trains on ``devices[i % len(devices)]`` (all its folds), by setting
        the estimator's ``device`` parameters (nested ones too), and the
        refit trains on ``devices[0]``. With ``n_jobs=len(devices)`` as many
        fits run at once as there are devices; scikit-learn dispatches the
        folds of a candidate one after the other, so fits running at once can
        share a device. ``"auto"`` means every
        visible CUDA device, or the CPU if there is none. None keeps the
        estimator's ``device``.
    n_threads : int or None, default=None
        Number of torch threads of each fit, set in the worker for the
        duration of the candidate's fit and scoring and restored afterwards.
        None divides the CPUs by the number of fits running at once (at least
        1, at most the caller's ``torch.get_num_threads()``), so that
        ``n_jobs`` parallel fits use the CPUs without oversubscribing them.

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
        As in :class:`~sklearn.model_selection.GridSearchCV`: per candidate,
        ``params`` and ``param_*``, ``split{k}_test_{metric}``,
        ``mean_test_{metric}``, ``std_test_{metric}`` and
        ``rank_test_{metric}`` for every metric (e.g.
        ``mean_test_neg_forgetting``), fit and score times, and, when
        ``devices`` is given, the ``device`` of each candidate; unless
        ``vectorize=False``, ``vectorized_group`` (the group a candidate
        trained in, -1 for alone) and ``vectorize_fallback`` (why it trained
        alone, ``""`` if it did not).
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
    RandomizedRegimeSearchCV : Search over sampled candidates.
    TaskKFold : The default folds, within every task.

    Notes
    -----
    Plain :class:`~sklearn.model_selection.GridSearchCV` works on the
    continual estimators too: ``GridSearchCV(clf, grid, cv=TaskKFold(3)).fit(
    X, y, task_id=t, groups=t)`` scores with the estimator's ``score``
    (pooled accuracy), and with metadata routing enabled it routes
    ``task_id`` to the estimator, to the continual scorers and to
    :class:`TaskKFold`. This class adds the continual scoring by default, the
    task-aware folds, the thread bound and the devices, without global
    metadata routing.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skcl import ContinualClassifier
    >>> from skcl.model_selection import RegimeSearchCV
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = (X[:300] / 16).astype(np.float32), y[:300]
    >>> X, y = np.vstack([X, X[:, ::-1]]), np.tile(y, 2)
    >>> task_id = np.repeat([0, 1], 300)
    >>> clf = ContinualClassifier(max_epochs=1, batch_size=10, random_state=0)
    >>> search = RegimeSearchCV(clf, {"lr": [1e-5, 0.1]}, cv=3, n_threads=1)
    >>> search = search.fit(X, y, task_id=task_id)
    >>> search.best_params_
    {'lr': 0.1}
    >>> sorted(key for key in search.cv_results_ if key.startswith("mean_test"))
    ['mean_test_average_accuracy', 'mean_test_backward_transfer', \
'mean_test_learning_accuracy', 'mean_test_neg_forgetting']
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **GridSearchCV._parameter_constraints,
        **_BaseRegimeSearch._parameter_constraints,
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit="average_accuracy",
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        devices=None,
        n_threads=None,
        vectorize="auto",
    ):
        super().__init__(
            estimator=estimator,
            param_grid=param_grid,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.devices = devices
        self.n_threads = n_threads
        self.vectorize = vectorize
