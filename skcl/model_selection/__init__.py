"""Model selection for continual learning: task-aware splitters and regime search.

The splitters hold out part of *every* task in each fold, so that a candidate
trained on a training fold has seen the whole stream and can be scored with the
continual metrics of :mod:`skcl.metrics` on the test fold. The searches
cross-validate training regimes (learning rate and its decay, batch size,
dropout, epochs, penalties) on these folds, in parallel through joblib on CPUs,
GPUs or a Dask cluster.

Plain :class:`~sklearn.model_selection.GridSearchCV` works on the continual
estimators as well. Without metadata routing, pass the task ids to ``fit``
(they go to the estimator) and as ``groups`` (they go to the splitter); the
candidates are then scored with the estimator's ``score``, the accuracy over all
held-out samples::

    GridSearchCV(clf, grid, cv=TaskKFold(3)).fit(X, y, task_id=t, groups=t)

With metadata routing enabled, ``task_id`` is routed to the estimator, to
:class:`TaskKFold` and to the continual scorers of :mod:`skcl.metrics`::

    sklearn.set_config(enable_metadata_routing=True)
    scoring = {"acc": get_continual_scorer("average_accuracy"),
               "forgetting": get_continual_scorer("neg_forgetting")}
    GridSearchCV(clf, grid, cv=TaskKFold(3), scoring=scoring, refit="acc").fit(
        X, y, task_id=t
    )

:class:`RegimeSearchCV` needs neither: it scores with the continual metrics by
default, folds within every task, bounds the torch threads of parallel fits,
spreads candidates over GPUs and shows progress.
"""

from ._randomized_regime_search import RandomizedRegimeSearchCV
from ._regime_search import RegimeSearchCV
from ._task_kfold import TaskKFold
from ._task_shuffle_split import TaskShuffleSplit

__all__ = [
    "RandomizedRegimeSearchCV",
    "RegimeSearchCV",
    "TaskKFold",
    "TaskShuffleSplit",
]
