"""The vectorized search's results are those of the search one by one."""

import warnings

import numpy as np
import pytest
import torch
from _tolerance import tolerance
from sklearn.datasets import load_digits
from sklearn.exceptions import FitFailedWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skcl import ContinualClassifier, Plugin
from skcl.model_selection import RandomizedRegimeSearchCV, RegimeSearchCV
from skcl.model_selection._vectorized_search import balanced_tasks
from skcl.penalties import EWC

GRID = {
    "lr": [0.02, 0.08],
    "momentum": [0.0, 0.9],
    "lr_decay": [1.0, 0.7],
    "penalty__lam": [1.0, 100.0],
}


@pytest.fixture(scope="module")
def stream():
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    tasks = [X[:150, rng.permutation(64)] / 16 for _ in range(3)]
    return np.vstack(tasks), np.tile(y[:150], 3), np.repeat([0, 1, 2], 150)


class Unstackable(Plugin):
    """A plug-in whose per-step hook does not say how it runs in a stack."""

    def after_step(self, net, step):
        pass


def _classifier(dtype, **params):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
    ).to(dtype)
    defaults = dict(
        module=module, penalty=EWC(), batch_size=10, max_epochs=2, random_state=0
    )
    return ContinualClassifier(**{**defaults, **params})


# A score: 9 accuracies of a 3 x 3 matrix (a count / n: 1 rounding each), a metric
# of them (up to 10), a mean over the splits (4) or a std (11), all float64 in
# [-1, 1]. The searches' predictions agree: only this arithmetic can differ.
SCORE_ATOL = tolerance(9 + 10 + 4 + 11)


def _compare(vectorized, alone, atol):
    a, b = vectorized.cv_results_, alone.cv_results_
    keys = [k for k in b if k.startswith(("split", "mean_test", "std_test"))]
    assert keys
    for key in keys:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)
    assert a["params"] == b["params"]
    if alone.refit:
        assert vectorized.best_params_ == alone.best_params_


@pytest.mark.parametrize(
    "dtype, atol",
    # float32: training's rounding may flip a prediction of a task's 50 test
    # rows, 1/50 of an accuracy, which a metric averages over 2 tasks: 0.01.
    [(torch.float64, SCORE_ATOL), (torch.float32, 0.01)],
    ids=["64", "32"],
)
def test_scores_equal_the_unvectorized_search(stream, dtype, atol):
    X, y, t = stream
    X = X.astype(np.float64 if dtype is torch.float64 else np.float32)
    clf = _classifier(dtype)
    searches = [
        RegimeSearchCV(clf, GRID, cv=3, n_threads=1, vectorize=v).fit(X, y, task_id=t)
        for v in ("auto", False)
    ]
    _compare(*searches, atol)
    vectorized = searches[0].cv_results_
    assert set(vectorized["vectorized_group"]) == {0}
    assert set(vectorized["vectorize_fallback"]) == {""}
    assert "vectorized_group" not in searches[1].cv_results_
    assert vectorized["mean_fit_time"].min() > 0
    np.testing.assert_array_equal(
        searches[0].best_estimator_.predict(X), searches[1].best_estimator_.predict(X)
    )


def test_two_workers_give_the_same_results(stream):
    X, y, t = stream
    clf = _classifier(torch.float64)
    grid = {"lr": [0.02, 0.08], "penalty__lam": [1.0, 100.0]}
    searches = [
        RegimeSearchCV(clf, grid, cv=3, n_jobs=n_jobs, refit=False).fit(X, y, task_id=t)
        for n_jobs in (2, 1)
    ]
    _compare(*searches, SCORE_ATOL)


def test_incompatible_candidates_train_alone_with_the_reason(stream):
    X, y, t = stream
    clf = _classifier(torch.float64)
    grid = [
        {"lr": [0.02, 0.08]},
        {"lr": [0.05], "batch_size": [20]},
        {"lr": [0.05], "penalty": [[EWC(), Unstackable()]]},
    ]
    searches = [
        RegimeSearchCV(clf, grid, cv=2, refit=False, vectorize=v).fit(X, y, task_id=t)
        for v in ("auto", False)
    ]
    _compare(*searches, SCORE_ATOL)
    results = searches[0].cv_results_
    assert results["vectorized_group"].tolist() == [0, 0, -1, -1]
    assert results["vectorize_fallback"][2] == (
        "it differs from the other candidates in a parameter that builds or "
        "trains the network (batch_size)"
    )
    assert "plug-in Unstackable acts at every step" in results["vectorize_fallback"][3]
    with pytest.raises(ValueError, match="vectorize=True, but the candidate"):
        RegimeSearchCV(clf, grid, cv=2, vectorize=True).fit(X, y, task_id=t)


def test_a_diverging_candidate_scores_error_score_and_is_named(stream):
    X, y, t = stream
    clf = _classifier(torch.float64, penalty_step="explicit")
    grid = {"lr": [0.05, 1e6]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = RegimeSearchCV(clf, grid, cv=2, refit=False).fit(X, y, task_id=t)
    messages = [str(w.message) for w in caught if w.category is FitFailedWarning]
    assert any("{'lr': 1000000.0} failed on 2 of 2 folds" in m for m in messages)
    assert any("Training diverged in task" in m for m in messages)
    scores = search.cv_results_["mean_test_average_accuracy"]
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
    with pytest.raises(FloatingPointError, match="Training diverged"):
        RegimeSearchCV(clf, grid, cv=2, error_score="raise").fit(X, y, task_id=t)


def test_train_scores_single_metric_and_randomized_search(stream):
    X, y, t = stream
    clf = _classifier(torch.float64)
    for v in ("auto", False):
        search = RandomizedRegimeSearchCV(
            clf,
            {"lr": [0.01, 0.03, 0.1], "penalty__lam": [1.0, 10.0]},
            n_iter=4,
            random_state=0,
            cv=2,
            scoring="average_accuracy",
            return_train_score=True,
            vectorize=v,
        ).fit(X, y, task_id=t)
        if v == "auto":
            vectorized = search
    _compare(vectorized, search, SCORE_ATOL)
    np.testing.assert_allclose(
        vectorized.cv_results_["mean_train_score"],
        search.cv_results_["mean_train_score"],
        rtol=0,
        atol=SCORE_ATOL,
    )


def test_devices_are_given_per_group(stream):
    X, y, t = stream
    clf = _classifier(torch.float64)
    grid = [{"lr": [0.02, 0.08]}, {"lr": [0.05], "batch_size": [20]}]
    search = RegimeSearchCV(clf, grid, cv=2, refit=False, devices=["cpu", "cpu:0"]).fit(
        X, y, task_id=t
    )
    assert search.cv_results_["device"].tolist() == ["cpu", "cpu", "cpu:0"]


def test_tasks_are_balanced_over_the_workers():
    groups = [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert balanced_tasks(groups, 4, 2) == [(groups[0], s) for s in range(4)]
    tasks = balanced_tasks(groups, 5, 2)
    assert tasks[:4] == [(groups[0], s) for s in range(4)]
    assert tasks[4:] == [([0, 2, 4, 6], 4), ([1, 3, 5, 7], 4)]
    assert balanced_tasks([[0], [1]], 3, 1) == [
        ([0], 0),
        ([0], 1),
        ([0], 2),
        ([1], 0),
        ([1], 1),
        ([1], 2),
    ]


def test_a_reason_found_once_the_networks_are_built_reaches_cv_results(stream):
    X, y, t = stream
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(64, 32), nn.LayerNorm(32), nn.Dropout(0.2), nn.Linear(32, 10)
    ).double()
    clf = _classifier(torch.float64, module=module)
    grid = {"random_state": [0, 1]}
    search = RegimeSearchCV(clf, grid, cv=2, refit=False).fit(X, y, task_id=t)
    assert search.cv_results_["vectorized_group"].tolist() == [-1, -1]
    assert set(search.cv_results_["vectorize_fallback"]) == {
        "differently seeded candidates draw their own random masks, which vmap "
        "cannot do for this module (MLPs and nn.Sequential can)"
    }
    alone = RegimeSearchCV(clf, grid, cv=2, refit=False, vectorize=False)
    _compare(search, alone.fit(X, y, task_id=t), 0)
    with pytest.raises(ValueError, match="could not train in a group: differently"):
        RegimeSearchCV(clf, grid, cv=2, vectorize=True).fit(X, y, task_id=t)


def test_a_search_over_a_pipeline_trains_its_candidates_in_one_group(stream):
    X, y, t = stream
    pipe = make_pipeline(StandardScaler(), _classifier(torch.float64))
    grid = [
        {"continualclassifier__lr": [0.02, 0.08]},
        {"continualclassifier__lr": [0.05], "standardscaler__with_mean": [False]},
    ]
    searches = [
        RegimeSearchCV(pipe, grid, cv=2, vectorize=v).fit(X, y, task_id=t)
        for v in ("auto", False)
    ]
    _compare(*searches, SCORE_ATOL)
    results = searches[0].cv_results_
    assert results["vectorized_group"].tolist() == [0, 0, -1]
    assert "(standardscaler)" in results["vectorize_fallback"][2]
    assert searches[0].best_params_ == searches[1].best_params_
    np.testing.assert_array_equal(
        searches[0].predict_proba(X), searches[1].predict_proba(X)
    )
