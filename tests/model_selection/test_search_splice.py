"""Search results land on their own candidate's row; a refit is all or nothing."""

import numpy as np
import pytest
import torch
from joblib import parallel_config
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skcl import ContinualClassifier
from skcl.model_selection import RandomizedRegimeSearchCV, RegimeSearchCV, _base_search
from skcl.penalties import EWC

# lr trains within a group, max_epochs builds another: the candidates in grid
# order are (0.02, 1), (0.02, 2), (0.08, 1), (0.08, 2), their groups [0, 2]
# and [1, 3].
GRID = {"lr": [0.02, 0.08], "max_epochs": [1, 2]}


def _classifier(**params):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).double()
    defaults = dict(module=module, penalty=EWC(), batch_size=10, random_state=0)
    return ContinualClassifier(**{**defaults, **params})


@pytest.fixture(scope="module")
def stream():
    X, y = load_digits(return_X_y=True)
    X = X[:200] / 16
    return np.vstack([X, X[:, ::-1]]), np.tile(y[:200], 2), np.repeat([0, 1], 200)


def _rows(search):
    """Per candidate (by its parameters), its row of cv_results_."""
    results = search.cv_results_
    keys = [
        k
        for k in results
        if k.startswith(("split", "mean_test", "std_test", "rank_test"))
    ]
    assert keys
    return {
        tuple(sorted(params.items())): {k: results[k][i] for k in keys}
        for i, params in enumerate(results["params"])
    }


def _permuting(monkeypatch, permute):
    """Make the search's group results come back permuted by ``permute``."""
    evaluate_grouped = _base_search.evaluate_grouped

    def permuted(*args, **kwargs):
        results, reasons = evaluate_grouped(*args, **kwargs)
        return permute(results), reasons

    monkeypatch.setattr(_base_search, "evaluate_grouped", permuted)


def test_a_result_on_another_candidates_row_stops_the_search(stream, monkeypatch):
    X, y, t = stream
    search = RegimeSearchCV(_classifier(), GRID, cv=2, refit=False)
    # Candidates 0 and 2 trained as one group: swap their results.
    _permuting(monkeypatch, lambda results: {**results, 0: results[2], 2: results[0]})
    with pytest.raises(
        RuntimeError,
        match="the result of candidate 2, fold 0 reached the row of candidate 0",
    ):
        search.fit(X, y, task_id=t)
    assert not hasattr(search, "cv_results_")


def test_a_result_on_another_folds_row_stops_the_search(stream, monkeypatch):
    X, y, t = stream
    _permuting(
        monkeypatch, lambda results: {i: outs[::-1] for i, outs in results.items()}
    )
    with pytest.raises(
        RuntimeError,
        match="the result of candidate 0, fold 1 reached the row of candidate 0, "
        "fold 0",
    ):
        RegimeSearchCV(_classifier(), GRID, cv=2, refit=False).fit(X, y, task_id=t)


def test_a_candidate_without_its_result_stops_the_search(stream, monkeypatch):
    # Today's placeholders score 0: a missing result must not pass as one.
    X, y, t = stream
    _permuting(monkeypatch, lambda results: {i: results[i] for i in (0, 1, 2)})
    with pytest.raises(RuntimeError, match="candidate 3 has no group result"):
        RegimeSearchCV(_classifier(), GRID, cv=2, refit=False).fit(X, y, task_id=t)


@pytest.mark.parametrize("search", ["grid", "randomized"])
def test_each_candidate_gets_its_own_row_whatever_the_group_order(stream, search):
    X, y, t = stream

    def fit(vectorize):
        if search == "grid":
            cls, kwargs = RegimeSearchCV, {}
        else:  # every candidate, in the sampler's order
            cls, kwargs = RandomizedRegimeSearchCV, {"n_iter": 4, "random_state": 3}
        estimator = cls(
            _classifier(), GRID, cv=3, n_jobs=4, vectorize=vectorize, **kwargs
        )
        # Four workers for six (group, fold) tasks: the last two groups are
        # cut into one part per worker, so the results come back out of order.
        with parallel_config(backend="threading"):
            return estimator.fit(X, y, task_id=t)

    vectorized, alone = fit("auto"), fit(False)
    groups = vectorized.cv_results_["vectorized_group"].tolist()
    assert len(set(groups)) == 2 and -1 not in groups
    assert groups != sorted(groups)  # groups interleave in candidate order
    rows, expected = _rows(vectorized), _rows(alone)
    assert rows.keys() == expected.keys()
    for params, row in expected.items():
        for key, value in row.items():
            np.testing.assert_allclose(
                rows[params][key], value, rtol=0, atol=1e-9, err_msg=f"{params} {key}"
            )
    assert vectorized.best_params_ == alone.best_params_


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, _Interrupted])
@pytest.mark.parametrize("vectorize", ["auto", False])
def test_an_interrupted_refit_keeps_the_previous_best_estimator(
    stream, monkeypatch, interruption, vectorize
):
    X, y, t = stream
    search = RegimeSearchCV(
        _classifier(), {"lr": [0.02, 0.08]}, cv=2, vectorize=vectorize
    )
    search.fit(X, y, task_id=t)
    before = {
        name: getattr(search, name)
        for name in ("best_estimator_", "best_params_", "best_index_", "best_score_")
    }
    cv_results = search.cv_results_
    predictions = search.predict(X)

    fit = ContinualClassifier.fit

    def interrupted_refit(estimator, X_fit, *args, **kwargs):
        if len(X_fit) == len(X):  # the refit; the folds train on less
            raise interruption("interrupted during the refit")
        return fit(estimator, X_fit, *args, **kwargs)

    monkeypatch.setattr(ContinualClassifier, "fit", interrupted_refit)
    search.set_params(param_grid={"lr": [0.05, 0.1]})
    with pytest.raises(interruption):
        search.fit(X, y, task_id=t)

    for name, value in before.items():
        assert getattr(search, name) is value, name
    assert search.cv_results_ is cv_results
    assert type(search.best_estimator_) is ContinualClassifier
    np.testing.assert_array_equal(search.predict(X), predictions)
    np.testing.assert_array_equal(search.best_estimator_.predict(X), predictions)
    assert type(search.estimator) is ContinualClassifier  # not the wrapper

    # A search that was never fitted is still not fitted.
    fresh = RegimeSearchCV(_classifier(), {"lr": [0.05]}, cv=2, vectorize=vectorize)
    with pytest.raises(interruption):
        fresh.fit(X, y, task_id=t)
    assert not hasattr(fresh, "best_estimator_")
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
