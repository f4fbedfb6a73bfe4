"""scikit-learn scorers that summarize a continual estimator's accuracy matrix."""

import copy

from sklearn import get_config
from sklearn.utils.metadata_routing import UNCHANGED, MetadataRequest

from ._functions import (
    average_accuracy,
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    learning_accuracy,
)
from ._matrix import _accuracy_matrix, initial_scores


class MissingTaskIdError(BaseException):
    """A continual scorer was called without the task ids it needs.

    It derives from :class:`BaseException`, not :class:`Exception` (as
    :class:`KeyboardInterrupt` does), because scikit-learn's searches,
    :func:`~sklearn.model_selection.cross_validate` and similar tools catch
    every ``Exception`` a scorer raises and score that fold ``error_score``
    (NaN by default): a search whose scorer never gets task ids would then
    train every candidate, score them all NaN and pick the first. This error
    stops such a search at its first scored fold instead. The message says how
    to pass the task ids; catch it by name (``except MissingTaskIdError``).

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.metrics import MissingTaskIdError, get_continual_scorer
    >>> X, y = np.random.RandomState(0).normal(size=(20, 2)), np.tile([0, 1], 10)
    >>> clf = ContinualClassifier(max_epochs=1).fit(X, y, task_id=np.repeat([0, 1], 10))
    >>> try:
    ...     get_continual_scorer("average_accuracy")(clf, X, y)
    ... except MissingTaskIdError as error:
    ...     print(str(error)[:64])
    make_continual_scorer(average_accuracy) needs the task id of eve
    """


class _ContinualScorer:
    """Scorer ``scorer(estimator, X, y, task_id=...)`` applying a metric to R.

    It requests ``task_id`` for ``score`` in scikit-learn's metadata routing, so
    that a search or ``cross_validate`` passes it the task ids of the held-out
    samples.
    """

    def __init__(self, metric, sign, scoring, needs_initial, kwargs):
        self._metric = metric
        self._sign = sign
        self._scoring = scoring
        self._needs_initial = needs_initial
        self._kwargs = kwargs
        self._task_id_request = True

    def __repr__(self):
        args = [getattr(self._metric, "__name__", repr(self._metric))]
        if self._sign < 0:
            args.append("greater_is_better=False")
        if self._scoring is not None:
            args.append(f"scoring={self._scoring!r}")
        if self._needs_initial:
            args.append("needs_initial=True")
        args += [f"{key}={value!r}" for key, value in self._kwargs.items()]
        return f"make_continual_scorer({', '.join(args)})"

    def _routing_repr(self):
        return repr(self)

    def __call__(self, estimator, X, y, *, task_id=None):
        """Score ``estimator`` on the held-out ``X``, ``y`` of the tasks ``task_id``.

        Parameters
        ----------
        estimator : estimator object
            A fitted continual estimator that kept its snapshots, or a
            pipeline or fitted search around one (see :func:`accuracy_matrix`).

        X : array-like of shape (n_samples, n_features)
            Held-out samples.

        y : array-like of shape (n_samples,)
            Their targets.

        task_id : array-like of shape (n_samples,)
            The task of each sample. Required; scikit-learn's tools pass it
            when metadata routing is enabled.

        Returns
        -------
        score : float
            The metric of the accuracy matrix, negated if smaller is better.

        Raises
        ------
        MissingTaskIdError
            If ``task_id`` is None. scikit-learn's searches and
            ``cross_validate`` do not turn this error into ``error_score``:
            it stops them at the first fold they score.
        """
        if task_id is None:
            raise MissingTaskIdError(self._missing_task_id_message())
        return self._score_matrix(
            self._accuracy_matrix(estimator, X, y, task_id), estimator, X, y, task_id
        )

    def _accuracy_matrix(self, estimator, X, y, task_id):
        R, _ = _accuracy_matrix(
            estimator, X, y, task_id, scoring=self._scoring, include_untrained=False
        )
        return R

    def _score_matrix(self, R, estimator, X, y, task_id):
        """The score from the accuracy matrix ``R`` of ``estimator`` on the data."""
        args = [R]
        if self._needs_initial:
            args.append(initial_scores(estimator, X, y, task_id, scoring=self._scoring))
        return self._sign * float(self._metric(*args, **self._kwargs))

    def _missing_task_id_message(self):
        message = (
            f"{self!r} needs the task id of every sample: call it as "
            "scorer(estimator, X, y, task_id=task_id)."
        )
        if not get_config()["enable_metadata_routing"]:
            return message + (
                " To use it in GridSearchCV, cross_validate or another scikit-learn "
                "tool, enable metadata routing with "
                "sklearn.set_config(enable_metadata_routing=True) and pass the task "
                "ids to fit, e.g. GridSearchCV(estimator, param_grid, "
                "scoring=scorer).fit(X, y, task_id=task_id) or cross_validate("
                "estimator, X, y, scoring=scorer, params={'task_id': task_id})."
            )
        return message + (
            " Metadata routing is enabled but no task_id reached the scorer: pass "
            "the task ids to fit, e.g. search.fit(X, y, task_id=task_id) or "
            "cross_validate(..., params={'task_id': task_id}); a scorer function "
            "that calls this one must take task_id and pass it on."
        )

    def set_score_request(self, *, task_id=UNCHANGED):
        """Set whether ``task_id`` is routed to this scorer (default: requested).

        Only available when metadata routing is enabled, see
        :func:`sklearn.set_config`.

        Parameters
        ----------
        task_id : str, True or UNCHANGED, default=UNCHANGED
            ``True`` requests the metadata ``task_id``, a string requests it
            under that alias; ``UNCHANGED`` keeps the current request. A
            continual scorer cannot score without the task ids, so ``False``
            and ``None`` (not requesting them) raise a ``ValueError``.

        Returns
        -------
        self : object
            The scorer.
        """
        if not get_config()["enable_metadata_routing"]:
            raise RuntimeError(
                "This method is only available when metadata routing is enabled. "
                "You can enable it using "
                "sklearn.set_config(enable_metadata_routing=True)."
            )
        if task_id is None or task_id is False:
            raise ValueError(
                f"{self!r} cannot score without the task ids, so it must request "
                f"them: got set_score_request(task_id={task_id!r}). Pass True, or "
                "a string to route them under another name (e.g. 'test_task_id')."
            )
        if task_id is not UNCHANGED:
            MetadataRequest(owner=self).score.add_request(
                param="task_id", alias=task_id
            )
            self._task_id_request = task_id
        return self

    def get_metadata_routing(self):
        """Get the metadata request of this scorer: ``task_id`` for ``score``.

        Returns
        -------
        routing : MetadataRequest
            A :class:`~sklearn.utils.metadata_routing.MetadataRequest`.
        """
        request = MetadataRequest(owner=self)
        request.score.add_request(param="task_id", alias=self._task_id_request)
        return request


def make_continual_scorer(
    metric, *, greater_is_better=True, scoring=None, needs_initial=False, **kwargs
):
    """Make a scorer from a metric of the accuracy matrix.

    The scorer is called as ``scorer(estimator, X, y, task_id=task_id)``: it
    computes the accuracy matrix ``R`` of the fitted ``estimator`` on the
    held-out ``X``, ``y`` (see :func:`~skcl.metrics.accuracy_matrix`) and
    returns ``metric(R, **kwargs)``, negated when ``greater_is_better=False``
    as scikit-learn does for losses. It can be passed as ``scoring`` to
    :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and similar tools, alone or
    in a dict of scorers. These pass it the held-out task ids when metadata
    routing is enabled (``sklearn.set_config(enable_metadata_routing=True)``)
    and the task ids are given to ``fit``; the scorer requests ``task_id`` by
    default (``set_score_request(task_id=...)`` changes that).

    Parameters
    ----------
    metric : callable
        ``metric(R, **kwargs)`` returning a number, or ``metric(R, b, **kwargs)``
        when ``needs_initial=True``.

    greater_is_better : bool, default=True
        Whether greater values of ``metric`` are better. If False the scorer
        returns ``-metric(...)``.

    scoring : str or callable, default=None
        Per-task score filling ``R``, as in
        :func:`~skcl.metrics.accuracy_matrix`; ``None`` uses the estimator's
        ``score``.

    needs_initial : bool, default=False
        Whether ``metric`` also takes the scores at initialization ``b`` (see
        :func:`~skcl.metrics.initial_scores`), as
        :func:`~skcl.metrics.forward_transfer` does.

    **kwargs : dict
        Further keyword arguments of ``metric``.

    Returns
    -------
    scorer : callable
        The scorer.

    See Also
    --------
    get_continual_scorer : The predefined continual scorers, by name.

    Examples
    --------
    >>> from skcl.metrics import forgetting, make_continual_scorer
    >>> make_continual_scorer(forgetting, greater_is_better=False, reference="first")
    make_continual_scorer(forgetting, greater_is_better=False, reference='first')
    """
    if not callable(metric):
        raise TypeError(f"metric must be a callable metric(R), got {metric!r}.")
    for name, value in [
        ("greater_is_better", greater_is_better),
        ("needs_initial", needs_initial),
    ]:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {value!r}.")
    sign = 1 if greater_is_better else -1
    return _ContinualScorer(metric, sign, scoring, needs_initial, kwargs)


_SCORERS = {
    "average_accuracy": make_continual_scorer(average_accuracy),
    "average_incremental_accuracy": make_continual_scorer(average_incremental_accuracy),
    "learning_accuracy": make_continual_scorer(learning_accuracy),
    "neg_forgetting": make_continual_scorer(forgetting, greater_is_better=False),
    "backward_transfer": make_continual_scorer(backward_transfer),
    "forward_transfer": make_continual_scorer(forward_transfer, needs_initial=True),
}


def get_continual_scorer_names():
    """Names of the predefined continual scorers.

    Returns
    -------
    names : list of str
        Names accepted by :func:`~skcl.metrics.get_continual_scorer`.

    Examples
    --------
    >>> from skcl.metrics import get_continual_scorer_names
    >>> get_continual_scorer_names()
    ['average_accuracy', 'average_incremental_accuracy', 'backward_transfer', \
'forward_transfer', 'learning_accuracy', 'neg_forgetting']
    """
    return sorted(_SCORERS)


def get_continual_scorer(scoring):
    """Get a continual scorer by name.

    scikit-learn does not know these names, so pass the scorer objects, not the
    names, as ``scoring``: ``GridSearchCV(..., scoring=get_continual_scorer(
    "neg_forgetting"))`` or, with several metrics, ``scoring={"acc":
    get_continual_scorer("average_accuracy"), "forgetting":
    get_continual_scorer("neg_forgetting")}``. Enable metadata routing and pass
    ``task_id`` to ``fit`` (see :func:`~skcl.metrics.make_continual_scorer`).

    ==================================  ======================================
    name                                value
    ==================================  ======================================
    ``"average_accuracy"``              :func:`average_accuracy`
    ``"average_incremental_accuracy"``  :func:`average_incremental_accuracy`
    ``"learning_accuracy"``             :func:`learning_accuracy`
    ``"neg_forgetting"``                ``-forgetting(R)`` (max reference),
                                        negated so that greater is better
    ``"backward_transfer"``             :func:`backward_transfer`
    ``"forward_transfer"``              :func:`forward_transfer`, needs the
                                        initial parameters
    ==================================  ======================================

    Parameters
    ----------
    scoring : str or callable
        A name from the table above, or a scorer, returned as is.

    Returns
    -------
    scorer : callable
        A new scorer object (its metadata requests can be changed freely).

    Examples
    --------
    >>> from skcl.metrics import get_continual_scorer
    >>> get_continual_scorer("neg_forgetting")
    make_continual_scorer(forgetting, greater_is_better=False)
    """
    if callable(scoring):
        return scoring
    if scoring == "forgetting":
        raise ValueError(
            "'forgetting' is not a scorer name: greater forgetting is worse, so the "
            "scorer returns its negation and is named 'neg_forgetting'."
        )
    if not isinstance(scoring, str) or scoring not in _SCORERS:
        raise ValueError(
            f"{scoring!r} is not a continual scorer name; valid names are "
            f"{get_continual_scorer_names()}. For scikit-learn's scorers use "
            "sklearn.metrics.get_scorer."
        )
    return copy.deepcopy(_SCORERS[scoring])
