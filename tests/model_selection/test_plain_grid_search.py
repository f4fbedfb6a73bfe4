"""Plain GridSearchCV on the continual estimators, with the task-aware folds."""

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skcl.metrics import MissingTaskIdError, get_continual_scorer
from skcl.model_selection import RegimeSearchCV, TaskKFold


def test_default_mode_scores_with_the_estimators_score(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    clf = make_classifier()
    cv = TaskKFold(3)
    # Without routing: task_id goes to fit, groups to the splitter.
    search = GridSearchCV(clf, {"lr": [1e-6, 0.1]}, cv=cv)
    search.fit(X, y, task_id=t, groups=t)
    assert search.best_params_ == {"lr": 0.1}
    assert search.best_estimator_.tasks_ == [0, 1]
    for k, (train, test) in enumerate(cv.split(X, y, task_id=t)):
        fitted = clone(clf).fit(X[train], y[train], task_id=t[train])
        assert search.cv_results_[f"split{k}_test_score"][1] == fitted.score(
            X[test], y[test]
        )


def test_routing_mode_scores_with_continual_scorers(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    grid = {"lr": [1e-6, 0.1]}
    with sklearn.config_context(enable_metadata_routing=True):
        # task_id is routed to fit, to the continual scorers and to TaskKFold.
        search = GridSearchCV(
            make_classifier(),
            grid,
            scoring={
                "average_accuracy": get_continual_scorer("average_accuracy"),
                "neg_forgetting": get_continual_scorer("neg_forgetting"),
            },
            refit="average_accuracy",
            cv=TaskKFold(3),
        ).fit(X, y, task_id=t)
    regime = RegimeSearchCV(
        make_classifier(),
        grid,
        scoring=["average_accuracy", "neg_forgetting"],
        cv=TaskKFold(3),
    ).fit(X, y, task_id=t)
    assert search.best_params_ == regime.best_params_ == {"lr": 0.1}
    for key, value in regime.cv_results_.items():
        if key.startswith("split"):
            np.testing.assert_array_equal(search.cv_results_[key], value)


def test_routing_without_task_ids_stops_at_the_first_fold(tiny_stream, make_classifier):
    X, y, _ = tiny_stream
    search = GridSearchCV(
        make_classifier(),
        {"lr": [1e-6, 0.1]},
        scoring=get_continual_scorer("average_accuracy"),
        cv=StratifiedKFold(3),
    )
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(MissingTaskIdError, match="no task_id reached the scorer"):
            search.fit(X, y)
    assert not hasattr(search, "cv_results_")


def test_task_kfold_without_groups_raises_before_any_fit(tiny_stream, make_classifier):
    X, y, t = tiny_stream
    search = GridSearchCV(make_classifier(), {"lr": [1e-6, 0.1]}, cv=TaskKFold(3))
    with pytest.raises(ValueError, match="groups=t"):
        search.fit(X, y, task_id=t)
    assert not hasattr(search, "cv_results_")
