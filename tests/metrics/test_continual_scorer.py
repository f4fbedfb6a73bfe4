import pickle

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, cross_validate

from skcl.metrics import (
    MissingTaskIdError,
    forgetting,
    get_continual_scorer,
    get_continual_scorer_names,
    learning_accuracy,
    make_continual_scorer,
)
from skcl.model_selection import TaskKFold

# Hand-computed from conftest.SCORES / INITIAL for tasks 10, 20, 30:
# R = [[1.0, 0.5, 0.4], [0.8, 0.9, 0.5], [0.6, 0.7, 1.0]], b = [0.3, 0.2, 0.1].
EXPECTED = {
    "average_accuracy": (0.6 + 0.7 + 1.0) / 3,
    "average_incremental_accuracy": (1.0 + 0.85 + 2.3 / 3) / 3,
    "learning_accuracy": (1.0 + 0.9 + 1.0) / 3,
    "neg_forgetting": -(0.4 + 0.2) / 2,
    "backward_transfer": (-0.4 - 0.2) / 2,
    "forward_transfer": (0.3 + 0.4) / 2,
}
# A worse candidate: same learning, more forgetting.
FORGETFUL = {
    10: (1.0, 0.2, 0.1),
    20: (0.5, 0.9, 0.2),
    30: (0.4, 0.5, 1.0),
}


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


@pytest.fixture(scope="module")
def cv_data(make_stream):
    """30 samples per task; each test fold holds k = 0..9 of every task."""
    X, y, task_id = make_stream([10, 20, 30], n_per_task=30)
    fold = np.tile(np.arange(30) // 10, 3)
    cv = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(3)]
    return X, y, task_id, cv


def test_names():
    assert get_continual_scorer_names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("enabled", [False, True])
def test_predefined_scorers_called_directly(fitted_fake, make_stream, name, enabled):
    X, y, task_id = make_stream([10, 20, 30])
    with sklearn.config_context(enable_metadata_routing=enabled):
        score = get_continual_scorer(name)(fitted_fake, X, y, task_id=task_id)
    assert isinstance(score, float)
    assert score == pytest.approx(EXPECTED[name])


def test_custom_scorer_with_metric_options_and_inner_scoring(fitted_fake, make_stream):
    X, y, task_id = make_stream([10, 20, 30])
    scorer = make_continual_scorer(
        forgetting, greater_is_better=False, reference="first"
    )
    assert scorer(fitted_fake, X, y, task_id=task_id) == pytest.approx(-0.3)
    scorer = make_continual_scorer(learning_accuracy, scoring="neg_mean_absolute_error")
    assert scorer(fitted_fake, X, y, task_id=task_id) == pytest.approx(-0.1 / 3)
    assert repr(scorer) == (
        "make_continual_scorer(learning_accuracy, scoring='neg_mean_absolute_error')"
    )


def test_missing_task_id_without_routing_says_how_to_enable_it(
    fitted_fake, make_stream
):
    X, y, _ = make_stream([10, 20, 30])
    scorer = get_continual_scorer("neg_forgetting")
    with pytest.raises(
        MissingTaskIdError,
        match=r"sklearn\.set_config\(enable_metadata_routing=True\)",
    ):
        scorer(fitted_fake, X, y)


def test_missing_task_id_with_routing(fitted_fake, make_stream, routing):
    X, y, _ = make_stream([10, 20, 30])
    with pytest.raises(MissingTaskIdError, match="pass the task ids to fit"):
        get_continual_scorer("average_accuracy")(fitted_fake, X, y)


class _CountingFake:
    """Wrap the fake classifier class so that its fits are counted."""

    def __init__(self, fake_cls):
        counts = self.counts = []

        class Counting(fake_cls):
            def fit(self, X, y, task_id=None):
                counts.append(1)
                return super().fit(X, y, task_id=task_id)

        self.cls = Counting


@pytest.mark.parametrize("error_score", [np.nan, 0.0])
@pytest.mark.parametrize("multimetric", [False, True])
@pytest.mark.parametrize("n_jobs", [None, 2])
def test_grid_search_without_routing_stops_at_the_first_fold(
    fake_cls, cv_data, error_score, multimetric, n_jobs
):
    # scikit-learn turns a scorer's Exception into error_score for every fold;
    # the missing task ids must stop the search instead of ranking NaNs.
    X, y, task_id, cv = cv_data
    counting = _CountingFake(fake_cls)
    scorer = get_continual_scorer("neg_forgetting")
    search = GridSearchCV(
        counting.cls(),
        {"keep_snapshots": [True, True, True]},
        scoring={"f": scorer, "a": get_continual_scorer("average_accuracy")}
        if multimetric
        else scorer,
        refit="f" if multimetric else True,
        cv=cv,
        error_score=error_score,
        n_jobs=n_jobs,
    )
    with pytest.raises(MissingTaskIdError, match="enable_metadata_routing=True"):
        search.fit(X, y, task_id=task_id)
    assert not hasattr(search, "best_params_")
    if n_jobs is None:
        assert len(counting.counts) == 1


def test_cross_validate_without_routing_stops(make_fake, cv_data):
    X, y, task_id, cv = cv_data
    with pytest.raises(MissingTaskIdError, match="cross_validate"):
        cross_validate(
            make_fake([10, 20, 30]),
            X,
            y,
            cv=cv,
            params={"task_id": task_id},
            scoring=get_continual_scorer("backward_transfer"),
        )


def test_grid_search_selects_least_forgetting(fitted_fake, fake_cls, cv_data, routing):
    X, y, task_id, cv = cv_data
    search = GridSearchCV(
        fake_cls(),
        {"scores": [FORGETFUL, fitted_fake.scores]},
        scoring=get_continual_scorer("neg_forgetting"),
        cv=cv,
    ).fit(X, y, task_id=task_id)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [-0.8, -0.3])
    assert search.best_index_ == 1
    assert search.best_estimator_.tasks_ == [10, 20, 30]


def test_multi_metric_grid_search(fitted_fake, fake_cls, cv_data, routing):
    X, y, task_id, cv = cv_data
    scoring = {name: get_continual_scorer(name) for name in EXPECTED}
    search = GridSearchCV(
        fake_cls(initial=fitted_fake.initial),
        {"scores": [FORGETFUL, fitted_fake.scores]},
        scoring=scoring,
        refit="average_accuracy",
        cv=cv,
    ).fit(X, y, task_id=task_id)
    for name, value in EXPECTED.items():
        assert search.cv_results_[f"mean_test_{name}"][1] == pytest.approx(value)
    assert search.cv_results_["mean_test_neg_forgetting"][0] == pytest.approx(-0.8)
    assert search.best_params_ == {"scores": fitted_fake.scores}


def test_cross_validate_with_params(make_fake, cv_data, routing):
    X, y, task_id, cv = cv_data
    scores = cross_validate(
        make_fake([10]),
        X,
        y,
        cv=cv,
        params={"task_id": task_id},
        scoring=get_continual_scorer("backward_transfer"),
    )
    np.testing.assert_allclose(scores["test_score"], [-0.3] * 3)


def test_nested_cross_validation_scores_the_refitted_search(
    fitted_fake, fake_cls, cv_data, routing
):
    X, y, task_id, cv = cv_data
    search = GridSearchCV(
        fake_cls(initial=fitted_fake.initial),
        {"scores": [FORGETFUL, fitted_fake.scores]},
        scoring=get_continual_scorer("neg_forgetting"),
        cv=TaskKFold(n_splits=2),
    )
    scoring = {name: get_continual_scorer(name) for name in EXPECTED}
    scores = cross_validate(
        search, X, y, cv=cv, params={"task_id": task_id}, scoring=scoring
    )
    for name, value in EXPECTED.items():
        np.testing.assert_allclose(scores[f"test_{name}"], [value] * 3)


def test_search_without_refit_cannot_be_scored(fitted_fake, fake_cls, cv_data, routing):
    X, y, task_id, cv = cv_data
    search = GridSearchCV(
        fake_cls(),
        {"scores": [fitted_fake.scores]},
        scoring=get_continual_scorer("neg_forgetting"),
        cv=cv,
        refit=False,
    ).fit(X, y, task_id=task_id)
    with pytest.raises(ValueError, match="refit=False"):
        get_continual_scorer("neg_forgetting")(search, X, y, task_id=task_id)


@pytest.mark.parametrize("request_", [False, None])
def test_score_request_cannot_be_turned_off(request_, routing):
    scorer = get_continual_scorer("neg_forgetting")
    with pytest.raises(ValueError, match="cannot score without the task ids"):
        scorer.set_score_request(task_id=request_)
    assert scorer.get_metadata_routing().score.requests == {"task_id": True}


def test_score_request_can_be_aliased(make_fake, cv_data, routing):
    X, y, task_id, cv = cv_data
    scorer = get_continual_scorer("neg_forgetting").set_score_request(
        task_id="test_task"
    )
    search = GridSearchCV(make_fake([10]), {"keep_snapshots": [True]}, cv=cv)
    search.set_params(scoring=scorer).fit(X, y, task_id=task_id, test_task=task_id)
    assert search.best_score_ == pytest.approx(-0.3)


def test_set_score_request_needs_routing_and_a_valid_alias(routing):
    scorer = get_continual_scorer("average_accuracy")
    with pytest.raises(ValueError, match="alias you're setting for `task_id`"):
        scorer.set_score_request(task_id=3)
    assert scorer.get_metadata_routing().score.requests == {"task_id": True}
    with sklearn.config_context(enable_metadata_routing=False):
        with pytest.raises(RuntimeError, match="enable_metadata_routing=True"):
            scorer.set_score_request(task_id=True)


def test_get_continual_scorer_returns_independent_copies(routing):
    get_continual_scorer("average_accuracy").set_score_request(task_id="other")
    fresh = get_continual_scorer("average_accuracy")
    assert fresh.get_metadata_routing().score.requests == {"task_id": True}
    assert get_continual_scorer(fresh) is fresh


@pytest.mark.parametrize(
    "name, match",
    [
        ("forgetting", "named 'neg_forgetting'"),
        ("accuracy", r"sklearn\.metrics\.get_scorer"),
        (None, "not a continual scorer name"),
    ],
)
def test_unknown_scorer_names(name, match):
    with pytest.raises(ValueError, match=match):
        get_continual_scorer(name)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metric": "forgetting"}, "metric must be a callable"),
        ({"metric": forgetting, "greater_is_better": "no"}, "greater_is_better"),
        ({"metric": forgetting, "needs_initial": 1}, "needs_initial must be a bool"),
    ],
)
def test_make_continual_scorer_validates(kwargs, match):
    with pytest.raises(TypeError, match=match):
        make_continual_scorer(**kwargs)


def test_scorer_survives_pickling(fitted_fake, make_stream):
    X, y, task_id = make_stream([10, 20, 30])
    scorer = pickle.loads(pickle.dumps(get_continual_scorer("forward_transfer")))
    assert scorer(fitted_fake, X, y, task_id=task_id) == pytest.approx(0.35)


def test_forward_transfer_scorer_needs_initial_parameters(make_fake, make_stream):
    X, y, task_id = make_stream([10, 20, 30])
    est = make_fake([10, 20, 30])
    est.initial_snapshot_ = None
    with pytest.raises(ValueError, match="initial_snapshot_ is None"):
        get_continual_scorer("forward_transfer")(est, X, y, task_id=task_id)
