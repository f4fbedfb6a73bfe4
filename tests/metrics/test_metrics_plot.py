import numpy as np
import pytest

from skcl.metrics import AccuracyMatrixDisplay, TaskAccuracyDisplay

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

R = np.array([[0.9, 0.2, 0.1], [0.7, 0.8, 0.3], [0.5, 0.6, 0.95]])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _ticks(labels):
    return [label.get_text() for label in labels]


def test_accuracy_matrix_display_renders(tmp_path):
    display = AccuracyMatrixDisplay.from_matrix(R, task_labels=["a", "b", "c"])
    np.testing.assert_array_equal(display.im_.get_array(), R)
    assert [[text.get_text() for text in row] for row in display.text_] == [
        ["0.90", "0.20", "0.10"],
        ["0.70", "0.80", "0.30"],
        ["0.50", "0.60", "0.95"],
    ]
    # Text contrasts with its cell: dark on the brightest, bright on the darkest.
    assert display.text_[2, 2].get_color() == display.im_.cmap(0.0)
    assert display.text_[0, 2].get_color() == display.im_.cmap(1.0)
    assert _ticks(display.ax_.get_xticklabels()) == ["a", "b", "c"]
    assert _ticks(display.ax_.get_yticklabels()) == ["a", "b", "c"]
    assert display.ax_.get_xlabel() == "Evaluated task"
    assert display.ax_.get_ylabel() == "After training task"
    assert display.colorbar_ is not None
    assert display.figure_ is display.ax_.figure
    display.figure_.savefig(tmp_path / "matrix.png")
    assert (tmp_path / "matrix.png").stat().st_size > 0


def test_accuracy_matrix_display_options():
    _, ax = plt.subplots()
    display = AccuracyMatrixDisplay(R).plot(
        ax=ax,
        include_values=False,
        colorbar=False,
        im_kw={"vmin": 0, "vmax": 1, "cmap": "Greys"},
    )
    assert display.ax_ is ax
    assert display.text_ is None and display.colorbar_ is None
    assert display.im_.norm.vmin == 0 and display.im_.cmap.name == "Greys"
    assert _ticks(ax.get_xticklabels()) == ["0", "1", "2"]
    display = AccuracyMatrixDisplay(R).plot(values_format=".0%", text_kw={"color": "r"})
    assert display.text_[0, 0].get_text() == "90%"
    assert display.text_[0, 0].get_color() == "r"


def test_accuracy_matrix_display_from_estimator(fitted_fake, make_stream, tmp_path):
    X, y, task_id = make_stream([10, 20, 30, 40])
    display = AccuracyMatrixDisplay.from_estimator(
        fitted_fake, X, y, task_id, include_untrained=True
    )
    assert display.im_.get_array().shape == (3, 4)
    assert display.task_labels == [10, 20, 30, 40]
    assert _ticks(display.ax_.get_xticklabels()) == ["10", "20", "30", "40"]
    assert _ticks(display.ax_.get_yticklabels()) == ["10", "20", "30"]
    assert display.text_[2, 3].get_text() == "0.40"
    display.figure_.savefig(tmp_path / "matrix.png")


@pytest.mark.parametrize(
    "matrix, labels, match",
    [
        (R[:, :2], None, r"0 < n_tasks <= n_columns, got shape \(3, 2\)"),
        (R[0], None, "2-D array"),
        (R, ["a", "b"], "one label per column of accuracy_matrix"),
    ],
)
def test_accuracy_matrix_display_validates(matrix, labels, match):
    with pytest.raises(ValueError, match=match):
        AccuracyMatrixDisplay.from_matrix(matrix, task_labels=labels)


def test_task_accuracy_display_single_matrix(tmp_path):
    display = TaskAccuracyDisplay.from_matrix(R, task_labels=["a", "b", "c"])
    assert isinstance(display.ax_, mpl.axes.Axes)
    assert display.lines_.shape == (1, 3)
    for i, line in enumerate(display.lines_[0]):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(i, 3))
        np.testing.assert_array_equal(line.get_ydata(), R[i:, i])
    labels = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert labels == ["task a", "task b", "task c"]
    assert _ticks(display.ax_.get_xticklabels()) == ["a", "b", "c"]
    display.figure_.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_task_accuracy_display_all_steps_and_untrained_columns():
    extended = np.column_stack([R, [0.5, 0.4, 0.3]])
    display = TaskAccuracyDisplay(extended).plot(trained_only=False)
    np.testing.assert_array_equal(display.lines_[0, 3].get_ydata(), extended[:, 3])
    np.testing.assert_array_equal(display.lines_[0, 1].get_xdata(), [0, 1, 2])
    display = TaskAccuracyDisplay(extended).plot(line_kw={"marker": "x"})
    assert display.lines_[0, 3] is None
    assert display.lines_[0, 0].get_marker() == "x"


def test_task_accuracy_display_side_by_side(tmp_path):
    display = TaskAccuracyDisplay.from_matrix({"naive": R, "ewc": R + 0.01})
    assert display.ax_.shape == (2,) and display.lines_.shape == (2, 3)
    assert [ax.get_title() for ax in display.ax_] == ["naive", "ewc"]
    np.testing.assert_allclose(display.lines_[1, 0].get_ydata(), R[:, 0] + 0.01)
    assert display.figure_ is display.ax_[1].figure
    display.figure_.savefig(tmp_path / "curves.png")

    _, axes = plt.subplots(2, 1)
    display = TaskAccuracyDisplay({"a": R, "b": R}).plot(ax=axes)
    assert list(display.ax_) == list(axes)


@pytest.mark.parametrize(
    "matrices, ax_count, match",
    [
        ({"a": R, "b": R[:2]}, None, "same shape"),
        ({}, None, "empty dict"),
        ({"a": R, "b": R}, 1, r"one Axes per accuracy matrix \(2\), got 1"),
    ],
)
def test_task_accuracy_display_validates(matrices, ax_count, match):
    ax = None if ax_count is None else plt.subplots(1, ax_count, squeeze=False)[1]
    with pytest.raises(ValueError, match=match):
        TaskAccuracyDisplay(matrices).plot(ax=ax)


def test_task_accuracy_display_from_estimators(make_fake, make_stream):
    X, y, task_id = make_stream([10, 20, 30])
    first, second = make_fake([10, 20, 30]), make_fake([10, 20, 30])
    display = TaskAccuracyDisplay.from_estimator(first, X, y, task_id)
    np.testing.assert_allclose(display.lines_[0, 0].get_ydata(), [1.0, 0.8, 0.6])
    display = TaskAccuracyDisplay.from_estimator(
        {"first": first, "second": second}, X, y, task_id
    )
    assert display.task_labels == [10, 20, 30]
    assert list(display.accuracy_matrices) == ["first", "second"]
    with pytest.raises(ValueError, match="same tasks in the same order"):
        TaskAccuracyDisplay.from_estimator(
            {"first": first, "other": make_fake([20, 10, 30])}, X, y, task_id
        )
