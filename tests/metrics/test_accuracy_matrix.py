import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score

from skcl.metrics import accuracy_matrix, initial_scores


def test_matrix_from_snapshots_leaves_estimator_unchanged(
    fitted_fake, make_stream, expected_R
):
    X, y, task_id = make_stream([10, 20, 30])
    state = joblib.hash(vars(fitted_fake))
    R = accuracy_matrix(fitted_fake, X, y, task_id=task_id)
    np.testing.assert_allclose(R, expected_R)
    assert R.shape == (3, 3) and R.dtype == float
    assert joblib.hash(vars(fitted_fake)) == state


@pytest.mark.parametrize(
    "scoring",
    ["accuracy", lambda est, X, y: accuracy_score(y, est.predict(X))],
    ids=["name", "callable"],
)
def test_scoring_gets_the_task_of_each_column(
    fitted_fake, make_stream, expected_R, scoring
):
    # The fake's predict raises unless it gets the evaluated task as task_id.
    X, y, task_id = make_stream([10, 20, 30])
    R = accuracy_matrix(fitted_fake, X, y, task_id, scoring=scoring)
    np.testing.assert_allclose(R, expected_R)


def test_scoring_with_a_loss_keeps_its_sign(fitted_fake, make_stream, expected_R):
    X, y, task_id = make_stream([10, 20, 30])
    R = accuracy_matrix(fitted_fake, X, y, task_id, scoring="neg_mean_absolute_error")
    np.testing.assert_allclose(R, expected_R - 1)


@settings(max_examples=20, deadline=None)
@given(st.permutations(range(30)))
def test_columns_follow_training_order_whatever_the_sample_order(
    fitted_fake, make_stream, expected_R, order
):
    X, y, task_id = make_stream([10, 20, 30])
    order = np.asarray(order)
    R = accuracy_matrix(fitted_fake, X[order], y[order], task_id[order])
    np.testing.assert_allclose(R, expected_R)


def test_training_order_is_first_appearance_not_sorted(make_fake, make_stream):
    est = make_fake([30, 10, 20])
    R = accuracy_matrix(est, *make_stream([10, 20, 30]))
    np.testing.assert_allclose(R, [[0.4, 1.0, 0.5], [0.5, 0.8, 0.9], [1.0, 0.6, 0.7]])


def test_untrained_tasks_are_ignored_with_a_warning(
    fitted_fake, make_stream, expected_R
):
    X, y, task_id = make_stream([40, 10, 20, 30])
    with pytest.warns(UserWarning, match=r"task\(s\) \[40\].*include_untrained=True"):
        R = accuracy_matrix(fitted_fake, X, y, task_id)
    np.testing.assert_allclose(R, expected_R)


def test_untrained_tasks_appended_on_request(fitted_fake, make_stream, expected_R):
    X, y, task_id = make_stream([40, 10, 20, 30])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R = accuracy_matrix(fitted_fake, X, y, task_id, include_untrained=True)
        b = initial_scores(fitted_fake, X, y, task_id, include_untrained=True)
    np.testing.assert_allclose(R, np.column_stack([expected_R, [0.5, 0.6, 0.4]]))
    np.testing.assert_allclose(b, [0.3, 0.2, 0.1, 0.5])


def test_initial_scores(fitted_fake, make_stream):
    X, y, task_id = make_stream([30, 20, 10])
    b = initial_scores(fitted_fake, X, y, task_id)
    np.testing.assert_allclose(b, [0.3, 0.2, 0.1])
    assert fitted_fake.current_ == 2


def test_trained_task_missing_from_held_out_data(fitted_fake, make_stream):
    X, y, task_id = make_stream([10, 30])
    with pytest.raises(ValueError, match=r"no samples of the trained task\(s\) \[20\]"):
        accuracy_matrix(fitted_fake, X, y, task_id)


def test_task_ids_of_another_type_do_not_match(fitted_fake, make_stream):
    X, y, task_id = make_stream([10, 20, 30])
    with pytest.raises(ValueError, match=r"trained task\(s\) \[10, 20, 30\]"):
        accuracy_matrix(fitted_fake, X, y, task_id.astype(str))


def test_string_task_ids_and_pandas_input(fake_cls, make_stream):
    scores = {"a": (0.9, 0.3), "b": (0.2, 0.8)}
    X, y, task_id = make_stream(["a", "b"])
    est = fake_cls(scores=scores, initial={"a": 0.5, "b": 0.5}).fit(X, y, task_id)
    R = accuracy_matrix(
        est, pd.DataFrame(X), pd.Series(y), pd.Series(task_id, index=np.arange(20) + 5)
    )
    np.testing.assert_allclose(R, [[0.9, 0.2], [0.3, 0.8]])


def test_without_snapshots(make_fake, make_stream):
    X, y, task_id = make_stream([10, 20])
    est = make_fake([10, 20], keep_snapshots=False)
    with pytest.raises(ValueError, match=r"kept 0 for 2 task.*keep_snapshots=True"):
        accuracy_matrix(est, X, y, task_id)
    with pytest.raises(ValueError, match="initial_snapshot_ is None"):
        initial_scores(est, X, y, task_id)


@pytest.mark.parametrize("function", [accuracy_matrix, initial_scores])
def test_unfitted_estimator(fake_cls, make_stream, function):
    with pytest.raises(NotFittedError):
        function(fake_cls(), *make_stream([10]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task_id": np.zeros(29)}, "inconsistent numbers of samples"),
        ({"task_id": np.zeros((30, 1))}, "task_id must be a 1-D array"),
        ({"scoring": {"a": "accuracy"}}, "scoring must be None, the name"),
        ({"scoring": "no_such_scorer"}, "'scoring' parameter"),
    ],
)
def test_invalid_arguments(fitted_fake, make_stream, kwargs, match):
    X, y, task_id = make_stream([10, 20, 30])
    with pytest.raises(ValueError, match=match):
        accuracy_matrix(fitted_fake, X, y, **{"task_id": task_id, **kwargs})


def test_estimator_restored_when_scoring_fails(make_fake, make_stream):
    X, y, task_id = make_stream([10, 20])
    est = make_fake([10, 20])

    def failing(estimator, X, y):
        if estimator.current_ == 0:
            raise RuntimeError("boom")
        return 1.0

    with pytest.raises(RuntimeError, match="boom"):
        accuracy_matrix(est, X, y, task_id, scoring=failing)
    assert est.current_ == 1
