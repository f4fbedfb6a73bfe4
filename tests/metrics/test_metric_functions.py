import numpy as np
import pytest
from _tolerance import tolerance
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skcl.metrics import (
    average_accuracy,
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    learning_accuracy,
    one_step_backward_transfer,
)

R3 = [[0.9, 0.2, 0.1], [0.7, 0.8, 0.3], [0.5, 0.6, 0.95]]
# Task 0 improves after its own training step, so the references differ.
R_PEAK = [[0.9, 0.1, 0.1], [0.95, 0.8, 0.1], [0.6, 0.7, 0.9]]

SQUARE_METRICS = [
    average_accuracy,
    average_incremental_accuracy,
    learning_accuracy,
    forgetting,
    backward_transfer,
    one_step_backward_transfer,
]


@pytest.mark.parametrize(
    "metric, R, expected",
    [
        (average_accuracy, R3, (0.5 + 0.6 + 0.95) / 3),
        (average_incremental_accuracy, R3, (0.9 + 0.75 + 2.05 / 3) / 3),
        (learning_accuracy, R3, (0.9 + 0.8 + 0.95) / 3),
        (forgetting, R3, (0.4 + 0.2) / 2),
        (backward_transfer, R3, (-0.4 - 0.2) / 2),
        (forgetting, R_PEAK, (0.35 + 0.1) / 2),
        (backward_transfer, R_PEAK, (-0.3 - 0.1) / 2),
        (one_step_backward_transfer, R3, ((0.7 - 0.9) + (0.6 - 0.8)) / 2),
        (one_step_backward_transfer, R_PEAK, ((0.95 - 0.9) + (0.7 - 0.8)) / 2),
    ],
)
def test_metric_on_hand_computed_matrix(metric, R, expected):
    result = metric(R)
    assert isinstance(result, float)
    assert result == pytest.approx(expected)


def test_forgetting_references_differ_when_a_task_peaks_later():
    assert forgetting(R_PEAK, reference="max") == pytest.approx(0.225)
    assert forgetting(R_PEAK, reference="first") == pytest.approx(0.2)


def test_forgetting_with_ties_in_the_past_scores():
    R = [[0.8, 0.0, 0.0], [0.8, 0.8, 0.0], [0.5, 0.8, 0.5]]
    assert forgetting(R) == pytest.approx((0.3 + 0.0) / 2)
    assert forgetting(R, reference="first") == pytest.approx(0.15)


def test_forgetting_is_negative_when_old_tasks_improve():
    R = [[0.5, 0.0], [0.9, 0.8]]
    assert forgetting(R) == pytest.approx(-0.4)
    assert backward_transfer(R) == pytest.approx(0.4)


def test_forward_transfer_hand_computed():
    assert forward_transfer(R3, [0.1, 0.1, 0.1]) == pytest.approx(0.15)
    assert forward_transfer(R3, np.array([0.9, 0.3, 0.5])) == pytest.approx(-0.15)


def test_single_task():
    R = np.array([[0.7]])
    assert average_accuracy(R) == average_incremental_accuracy(R) == 0.7
    assert learning_accuracy(R) == 0.7
    assert forgetting(R) == forgetting(R, reference="first") == 0.0
    assert backward_transfer(R) == 0.0
    assert one_step_backward_transfer(R) == 0.0
    assert forward_transfer(R, [0.1]) == 0.0


@pytest.mark.parametrize("metric", SQUARE_METRICS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_matrix_is_rejected(metric, bad):
    R = np.array(R3)
    R[1, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        metric(R)


@pytest.mark.parametrize("metric", SQUARE_METRICS)
@pytest.mark.parametrize(
    "R", [[0.5, 0.6], [[0.5, 0.6]], np.zeros((0, 0)), np.zeros((2, 2, 2))]
)
def test_non_square_matrix_is_rejected(metric, R):
    with pytest.raises(ValueError, match="square 2-D"):
        metric(R)


@pytest.mark.parametrize("R", [[["a", "b"], ["c", "d"]], [[0.5], [0.5, 0.6]]])
def test_non_numeric_matrix_is_rejected(R):
    with pytest.raises(ValueError, match="R must be an array of numbers"):
        average_accuracy(R)


def test_forgetting_rejects_unknown_reference():
    with pytest.raises(ValueError, match="reference must be 'max' or 'first'"):
        forgetting(R3, reference="last")


@pytest.mark.parametrize(
    "b, match",
    [
        ([0.1, 0.1], r"b must have shape \(3,\)"),
        ([[0.1, 0.1, 0.1]], r"b must have shape \(3,\)"),
        ([0.1, np.nan, 0.1], "b must contain only finite"),
        (["x", "y", "z"], "b must be an array of numbers"),
    ],
)
def test_forward_transfer_validates_b(b, match):
    with pytest.raises(ValueError, match=match):
        forward_transfer(R3, b)


def _brute_force(R, b):
    """The definitions of DESIGN.md section 3, as loops."""
    T = len(R)
    last = T - 1
    aia = [sum(R[t][i] for i in range(t + 1)) / (t + 1) for t in range(T)]
    past = range(last)
    max_ref = [max(R[t][i] for t in range(i, last)) - R[last][i] for i in past]
    first_ref = [R[i][i] - R[last][i] for i in past]
    bwt = [R[last][i] - R[i][i] for i in past]
    fwt = [R[i - 1][i] - b[i] for i in range(1, T)]
    return {
        "average_accuracy": sum(R[last]) / T,
        "average_incremental_accuracy": sum(aia) / T,
        "learning_accuracy": sum(R[i][i] for i in range(T)) / T,
        "forgetting_max": sum(max_ref) / len(max_ref) if T > 1 else 0.0,
        "forgetting_first": sum(first_ref) / len(first_ref) if T > 1 else 0.0,
        "backward_transfer": sum(bwt) / len(bwt) if T > 1 else 0.0,
        "forward_transfer": sum(fwt) / len(fwt) if T > 1 else 0.0,
    }


unit = st.floats(0, 1, allow_nan=False)


@st.composite
def matrix_and_b(draw):
    n_tasks = draw(st.integers(1, 6))
    R = draw(arrays(float, (n_tasks, n_tasks), elements=unit))
    b = draw(arrays(float, (n_tasks,), elements=unit))
    return R, b


@given(matrix_and_b())
def test_metrics_match_brute_force_definitions(data):
    R, b = data
    expected = _brute_force(R.tolist(), b.tolist())
    actual = {
        "average_accuracy": average_accuracy(R),
        "average_incremental_accuracy": average_incremental_accuracy(R),
        "learning_accuracy": learning_accuracy(R),
        "forgetting_max": forgetting(R),
        "forgetting_first": forgetting(R, reference="first"),
        "backward_transfer": backward_transfer(R),
        "forward_transfer": forward_transfer(R, b),
    }
    # Derived: each metric sums at most R.size + len(b) scores in [0, 1].
    assert actual == pytest.approx(expected, abs=tolerance(R.size + len(b)))


@given(matrix_and_b())
def test_first_reference_forgetting_is_minus_backward_transfer(data):
    R, _ = data
    assert forgetting(R, reference="first") == pytest.approx(-backward_transfer(R))


@given(matrix_and_b())
def test_max_reference_bounds_first_reference(data):
    R, _ = data
    # Derived: each side sums at most R.size scores in [0, 1].
    assert forgetting(R) >= forgetting(R, reference="first") - tolerance(2 * R.size)


@given(matrix_and_b())
def test_max_forgetting_is_non_negative_when_no_task_ends_above_its_training_score(
    data,
):
    # Chaudhry's forgetting is not >= 0 in general (see the negative example
    # above); it is when every task ends at most at its just-trained score.
    R, _ = data
    np.fill_diagonal(R, np.maximum(np.diag(R), R[-1]))
    assert forgetting(R) >= -tolerance(R.size)  # sums of R.size scores in [0, 1]


@given(matrix_and_b(), st.data())
def test_metrics_ignore_scores_before_training(data, draw):
    # R[t, i] with t < i (task i not trained yet) only enters forward transfer.
    R, _ = data
    changed = R.copy()
    upper = np.triu_indices(len(R), k=1)
    changed[upper] = draw.draw(arrays(float, upper[0].shape, elements=unit))
    for metric in [*SQUARE_METRICS, lambda R: forgetting(R, reference="first")]:
        assert metric(changed) == metric(R)


@given(matrix_and_b(), st.floats(-1, 1))
def test_shift_of_all_scores(data, c):
    R, b = data
    for metric in [average_accuracy, average_incremental_accuracy, learning_accuracy]:
        assert metric(R + c) == pytest.approx(metric(R) + c)
    # Derived: both sides sum at most R.size + len(b) scores of magnitude <= |R + c|.
    bound = tolerance(2 * (R.size + len(b)), np.abs(R) + abs(c))
    for metric in [forgetting, backward_transfer]:
        assert metric(R + c) == pytest.approx(metric(R), abs=bound)
    assert forward_transfer(R + c, b + c) == pytest.approx(
        forward_transfer(R, b), abs=bound
    )


@given(matrix_and_b())
def test_ranges_for_scores_in_unit_interval(data):
    R, b = data
    for metric in [average_accuracy, average_incremental_accuracy, learning_accuracy]:
        assert 0.0 <= metric(R) <= 1.0
    for value in [forgetting(R), backward_transfer(R), forward_transfer(R, b)]:
        assert -1.0 <= value <= 1.0


@given(matrix_and_b(), st.randoms())
def test_average_accuracy_does_not_depend_on_column_order(data, random):
    R, _ = data
    order = list(range(len(R)))
    random.shuffle(order)
    assert average_accuracy(R[:, order]) == pytest.approx(average_accuracy(R))
