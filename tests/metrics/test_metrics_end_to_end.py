import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skcl import ContinualClassifier
from skcl.metrics import (
    accuracy_matrix,
    average_accuracy,
    forgetting,
    get_continual_scorer,
    initial_scores,
)


@pytest.fixture(scope="module")
def permuted_digits():
    """Three tasks: digits with fixed pixel permutations (task 0 unpermuted)."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    rng = np.random.default_rng(0)
    perms = [np.arange(64), rng.permutation(64), rng.permutation(64)]
    X = np.concatenate([X[:, perm] for perm in perms])
    y = np.tile(y, 3)
    task_id = np.repeat(["a", "b", "c"], len(y) // 3)
    test = np.arange(len(y)) % 4 == 0
    return X[~test], y[~test], task_id[~test], X[test], y[test], task_id[test]


def test_accuracy_matrix_of_a_continual_classifier(permuted_digits):
    X, y, task_id, X_test, y_test, task_test = permuted_digits
    clf = ContinualClassifier(lr=0.1, max_epochs=1, random_state=0)
    clf.fit(X, y, task_id=task_id)
    proba = clf.predict_proba(X_test)

    R = accuracy_matrix(clf, X_test, y_test, task_test)
    b = initial_scores(clf, X_test, y_test, task_test)

    assert R.shape == (3, 3) and b.shape == (3,)
    assert (np.diag(R) > 0.8).all()
    assert (b < 0.3).all()
    # Unrelated permutations: the network forgets the earlier tasks.
    assert R[2, 0] < R[0, 0] - 0.2
    assert forgetting(R) > 0.2
    assert average_accuracy(R) == pytest.approx(R[-1].mean())
    assert R[-1, -1] == pytest.approx(
        clf.score(X_test[task_test == "c"], y_test[task_test == "c"])
    )
    np.testing.assert_array_equal(clf.predict_proba(X_test), proba)


def test_grid_search_with_continual_scorers(permuted_digits):
    X, y, task_id, *_ = permuted_digits
    cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, task_id))
    with sklearn.config_context(enable_metadata_routing=True):
        clf = ContinualClassifier(max_epochs=1, random_state=0)
        search = GridSearchCV(
            clf.set_fit_request(task_id=True),
            {"lr": [0.005, 0.1]},
            scoring={
                "acc": get_continual_scorer("average_accuracy"),
                "forgetting": get_continual_scorer("neg_forgetting"),
            },
            refit="acc",
            cv=cv,
        ).fit(X, y, task_id=task_id)
    results = search.cv_results_
    assert np.isfinite(results["mean_test_acc"]).all()
    # The large learning rate overwrites the earlier tasks.
    assert results["mean_test_forgetting"][1] < -0.2
    assert search.best_index_ == np.argmax(results["mean_test_acc"])
    assert search.best_estimator_.tasks_ == ["a", "b", "c"]


def test_accuracy_matrix_and_scorers_accept_a_pipeline():
    import sklearn
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcl.metrics import accuracy_matrix, get_continual_scorer

    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4)) * 10
    y = (X[:, 0] > 0).astype(int)
    task = np.repeat([0, 1, 2], 40)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(
            StandardScaler(), ContinualClassifier(max_epochs=2, random_state=0)
        ).fit(X, y, task_id=task)
        R = accuracy_matrix(pipe, X, y, task)
        direct = accuracy_matrix(pipe[-1], pipe[0].transform(X), y, task)
        np.testing.assert_array_equal(R, direct)
        scorer = get_continual_scorer("average_accuracy")
        assert scorer(pipe, X, y, task_id=task) == pytest.approx(R[-1].mean())
