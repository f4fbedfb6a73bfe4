import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skcl import ContinualClassifier
from skcl.penalties import L2, L2Init


class RecordingClassifier(ContinualClassifier):
    """Records the task ids each fit receives."""

    def fit(self, X, y, task_id=None):
        type(self).seen = None if task_id is None else np.asarray(task_id)
        return super().fit(X, y, task_id=task_id)


def small(**params):
    return ContinualClassifier(max_epochs=2, random_state=0, **params)


def test_clone_and_deep_params_include_the_penalty():
    clf = small(penalty=L2(lam=3.0), module__dropout=0.5)
    params = clf.get_params(deep=True)
    assert params["penalty__lam"] == 3.0 and params["module__dropout"] == 0.5
    copy = clone(clf)
    assert copy.penalty is not clf.penalty
    assert copy.get_params()["penalty__lam"] == 3.0
    copy.set_params(penalty__lam=0.1)
    assert clf.penalty.lam == 3.0


@pytest.mark.parametrize("routing", [False, True])
def test_pipeline_passes_task_id(digits_stream, routing):
    X, y, t = digits_stream
    RecordingClassifier.seen = None
    with sklearn.config_context(enable_metadata_routing=routing):
        clf = RecordingClassifier(max_epochs=1, random_state=0)
        if routing:  # task_id is requested by default
            pipe = make_pipeline(StandardScaler(), clf)
            pipe.fit(X, y, task_id=t)
            assert pipe.score(X, y, task_id=t) > 0.3
        else:
            pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)])
            pipe.fit(X, y, clf__task_id=t)
    np.testing.assert_array_equal(RecordingClassifier.seen, t)
    assert pipe[-1].tasks_ == [0, 1, 2]
    assert pipe.score(X, y) > 0.3


def test_grid_search_over_lambda_and_lr_runs_and_refits(digits_stream):
    X, y, t = digits_stream
    search = GridSearchCV(
        small(penalty=L2Init()),
        {"penalty__lam": [0.0, 1e-2], "lr": [1e-5, 0.05]},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X, y, task_id=t)
    assert search.best_params_["lr"] == 0.05
    assert search.best_estimator_.tasks_ == [0, 1, 2]
    assert len(search.cv_results_["params"]) == 4


def test_grid_search_over_a_list_of_penalties(digits_stream):
    X, y, t = digits_stream
    search = GridSearchCV(
        small(penalty=[L2(lam=1.0), L2Init(lam=1e-3)]),
        {"penalty__0__lam": [0.1, 1.0]},
        cv=2,
    ).fit(X, y, task_id=t)
    assert (
        search.best_estimator_.penalty_[0].lam == search.best_params_["penalty__0__lam"]
    )


def test_grid_search_with_routing_enabled(digits_stream):
    X, y, t = digits_stream
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(small(), {"lr": [1e-5, 0.05]}, cv=2)
        search.fit(X, y, task_id=t)
    assert search.best_params_["lr"] == 0.05
    assert search.best_estimator_.tasks_ == [0, 1, 2]
