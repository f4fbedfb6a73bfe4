"""The displays as the user guide describes them.

AccuracyMatrixDisplay draws a dict of matrices in one panel per entry (at
most three per row), titled with its name, all on one colour scale with one
colorbar; from matrices, from estimators, or on the user's axes.
TaskAccuracyDisplay never gives neighbouring tasks one hue.
"""

import numpy as np
import pytest

from skcl.metrics import AccuracyMatrixDisplay, TaskAccuracyDisplay

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

NAIVE = np.array([[0.9, 0.2, 0.1], [0.4, 0.8, 0.3], [0.2, 0.3, 0.95]])
EWC = np.array([[0.85, 0.2, 0.1], [0.7, 0.75, 0.3], [0.6, 0.65, 0.7]])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _ticks(labels):
    return [label.get_text() for label in labels]


def test_a_dict_draws_one_panel_per_matrix_on_one_colour_scale(tmp_path):
    display = AccuracyMatrixDisplay.from_matrix(
        {"naive": NAIVE, "ewc": EWC}, task_labels=["a", "b", "c"]
    )
    assert display.ax_.shape == (2,) and display.im_.shape == (2,)
    assert [ax.get_title() for ax in display.ax_] == ["naive", "ewc"]
    np.testing.assert_array_equal(display.im_[0].get_array(), NAIVE)
    np.testing.assert_array_equal(display.im_[1].get_array(), EWC)
    # One scale, from the smallest score of both to the largest.
    for image in display.im_:
        assert (image.norm.vmin, image.norm.vmax) == (0.1, 0.95)
    assert display.figure_.axes.count(display.colorbar_.ax) == 1
    assert len(display.figure_.axes) == 3  # two panels and the colorbar
    assert display.text_.shape == (2, 3, 3)
    assert display.text_[1, 2, 0].get_text() == "0.60"
    assert display.text_[0, 1, 0].get_text() == "0.40"
    # Contrast is judged on the shared scale: 0.95 is the brightest cell.
    assert display.text_[0, 2, 2].get_color() == display.im_[0].cmap(0.0)
    for ax in display.ax_:
        assert _ticks(ax.get_xticklabels()) == ["a", "b", "c"]
        assert ax.get_xlabel() == "Evaluated task"
    assert [ax.get_ylabel() for ax in display.ax_] == ["After training task", ""]
    display.figure_.savefig(tmp_path / "matrices.png")
    assert (tmp_path / "matrices.png").stat().st_size > 0


def test_panels_form_rows_of_three_and_options_apply_to_each():
    matrices = {f"s{k}": NAIVE * (1 - 0.05 * k) for k in range(5)}
    display = AccuracyMatrixDisplay.from_matrix(
        matrices, include_values=False, colorbar=False, im_kw={"vmin": 0, "vmax": 1}
    )
    rows = {round(ax.get_position().y0, 3) for ax in display.ax_}
    assert len(rows) == 2 and len(display.figure_.axes) == 5
    assert [bool(ax.get_ylabel()) for ax in display.ax_] == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert display.text_ is None and display.colorbar_ is None
    assert {(im.norm.vmin, im.norm.vmax) for im in display.im_} == {(0, 1)}


def test_a_dict_on_the_users_axes():
    figure, axes = plt.subplots(1, 2)
    display = AccuracyMatrixDisplay({"naive": NAIVE, "ewc": EWC}).plot(ax=axes)
    assert list(display.ax_) == list(axes) and display.figure_ is figure
    with pytest.raises(ValueError, match=r"one Axes per accuracy matrix \(2\), got 1"):
        AccuracyMatrixDisplay({"naive": NAIVE, "ewc": EWC}).plot(ax=axes[:1])


def test_a_dict_of_estimators(make_fake, make_stream, expected_R):
    X, y, task_id = make_stream([10, 20, 30])
    first, second = make_fake([10, 20, 30]), make_fake([10, 20, 30])
    display = AccuracyMatrixDisplay.from_estimator(
        {"first": first, "second": second}, X, y, task_id
    )
    assert display.task_labels == [10, 20, 30]
    assert list(display.accuracy_matrix) == ["first", "second"]
    for image in display.im_:
        np.testing.assert_array_equal(image.get_array(), expected_R)
    with pytest.raises(ValueError, match="same tasks in the same order"):
        AccuracyMatrixDisplay.from_estimator(
            {"first": first, "other": make_fake([20, 10, 30])}, X, y, task_id
        )


@pytest.mark.parametrize(
    ("matrices", "match"),
    [
        ({}, "accuracy_matrix must not be an empty dict"),
        ({"a": NAIVE, "b": NAIVE[:2]}, r"same shape, got \[\(2, 3\), \(3, 3\)\]"),
        ({"a": NAIVE[:, :2]}, "each matrix of accuracy_matrix must be a 2-D array"),
    ],
)
def test_a_bad_dict_is_refused_with_what_to_pass(matrices, match):
    with pytest.raises(ValueError, match=match):
        AccuracyMatrixDisplay.from_matrix(matrices)


def test_up_to_twenty_tasks_neighbours_never_share_a_hue():
    """tab20 pairs a dark and a light shade of each hue: tasks k and k + 10 get them."""
    n = 20
    R = np.tril(np.full((n, n), 0.9)) + np.triu(np.full((n, n), 0.1), 1)
    display = TaskAccuracyDisplay.from_matrix({"a": R, "b": R})
    tab20 = list(mpl.colormaps["tab20"].colors)
    for lines in display.lines_:
        hue = [tab20.index(mpl.colors.to_rgb(line.get_color())) // 2 for line in lines]
        assert hue == list(range(10)) * 2
        shade = [tab20.index(mpl.colors.to_rgb(line.get_color())) % 2 for line in lines]
        assert shade == [0] * 10 + [1] * 10
        assert [line.get_marker() for line in lines] == ["o"] * 10 + ["s"] * 10
    labels = [text.get_text() for text in display.legend_.get_texts()]
    assert labels == [f"task {i}" for i in range(n)]
