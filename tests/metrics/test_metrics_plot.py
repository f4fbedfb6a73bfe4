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
    labels = [text.get_text() for text in display.legend_.get_texts()]
    assert labels == ["task a", "task b", "task c"]
    assert display.colorbar_ is None
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


def _stream_matrix(n, seed=0):
    """A plausible ``n``-task accuracy matrix: learned, then slowly forgotten."""
    rng = np.random.default_rng(seed)
    R = rng.uniform(0.1, 0.3, size=(n, n))
    for t in range(n):
        R[t, : t + 1] = 0.9 - 0.02 * (t - np.arange(t + 1)) + rng.normal(0, 0.01)
    return np.clip(R, 0, 1)


def _inside(figure, artist):
    """Whether ``artist`` lies within ``figure`` once drawn (in pixels)."""
    figure.canvas.draw()
    box = artist.get_window_extent(figure.canvas.get_renderer())
    return (
        box.x0 >= 0
        and box.y0 >= 0
        and box.x1 <= figure.bbox.width
        and box.y1 <= figure.bbox.height
    )


@pytest.mark.parametrize(("n", "annotated"), [(5, True), (12, True), (20, False)])
def test_accuracy_matrix_annotates_only_while_the_values_fit(n, annotated):
    display = AccuracyMatrixDisplay.from_matrix(_stream_matrix(n))
    assert (display.text_ is not None) == annotated
    if annotated:
        sizes = {text.get_fontsize() for text in display.text_.ravel()}
        assert len(sizes) == 1 and 5 <= sizes.pop() <= 10
    forced = AccuracyMatrixDisplay.from_matrix(_stream_matrix(n), include_values=True)
    assert forced.text_.shape == (n, n)
    with pytest.raises(ValueError, match="include_values must be True, False or"):
        AccuracyMatrixDisplay(R).plot(include_values="yes")


@pytest.mark.parametrize(("n", "step"), [(5, 1), (12, 2), (20, 2), (50, 5)])
def test_ticks_are_thinned_to_about_ten(n, step):
    labels = [f"t{i}" for i in range(n)]
    matrix = AccuracyMatrixDisplay.from_matrix(_stream_matrix(n), task_labels=labels)
    curves = TaskAccuracyDisplay.from_matrix(_stream_matrix(n), task_labels=labels)
    for ax in (matrix.ax_, curves.ax_):
        assert _ticks(ax.get_xticklabels()) == labels[::step]
    assert _ticks(matrix.ax_.get_yticklabels()) == labels[::step]


def test_task_colours_stay_distinct_for_long_streams():
    for n in (5, 20, 50):
        display = TaskAccuracyDisplay.from_matrix(_stream_matrix(n))
        colours = {line.get_color() for line in display.lines_[0]}
        colours = {tuple(np.round(mpl.colors.to_rgba(c), 6)) for c in colours}
        assert len(colours) == n


@pytest.mark.parametrize(("n", "legend"), [(5, True), (20, True), (50, False)])
def test_task_legend_or_colorbar_stays_in_the_figure(tmp_path, n, legend):
    matrices = {name: _stream_matrix(n, seed) for seed, name in enumerate("abcd")}
    display = TaskAccuracyDisplay.from_matrix(matrices)
    assert (display.legend_ is not None) == legend
    assert (display.colorbar_ is not None) == (not legend)
    if legend:
        assert len(display.legend_.get_texts()) == n
        assert _inside(display.figure_, display.legend_)
    else:
        assert _ticks(display.colorbar_.ax.get_yticklabels())[:2] == ["0", "5"]
        assert _inside(display.figure_, display.colorbar_.ax)


def test_several_panels_form_a_grid_sharing_the_y_axis():
    matrices = {f"s{k}": _stream_matrix(5, k) * (1 - 0.1 * k) for k in range(9)}
    display = TaskAccuracyDisplay.from_matrix(matrices)
    assert display.ax_.shape == (9,) and len(display.figure_.axes) == 9
    width, height = display.figure_.get_size_inches()
    assert 1 <= width / height <= 2.5
    rows = {round(ax.get_position().y0, 3) for ax in display.ax_}
    assert len(rows) == 3
    assert len({ax.get_ylim() for ax in display.ax_}) == 1
    assert [bool(ax.get_ylabel()) for ax in display.ax_] == [True, False, False] * 3


@pytest.mark.parametrize("n", [5, 20])
def test_users_axes_share_the_y_limits_and_keep_the_legend(tmp_path, n):
    low, high = _stream_matrix(n) * 0.5, _stream_matrix(n, 1) * 0.5 + 0.45
    figure, axes = plt.subplots(1, 2, figsize=(8, 3))
    display = TaskAccuracyDisplay({"low": low, "high": high}).plot(ax=axes)
    assert axes[0].get_ylim() == axes[1].get_ylim()
    drawn_low = low[np.tril_indices(n)].min()  # curves start at their task
    assert axes[0].get_ylim()[0] <= drawn_low and axes[0].get_ylim()[1] >= high.max()
    # No constrained layout: a legend inside the axes up to 10 tasks, else a
    # colorbar that takes its room from the axes.
    artist = display.legend_ if n <= 10 else display.colorbar_.ax
    assert artist is not None and _inside(figure, artist)
    if n <= 10:
        assert display.legend_.axes is axes[1]
    figure.savefig(tmp_path / "user.png")


def test_users_constrained_figure_gets_a_figure_legend():
    figure, axes = plt.subplots(1, 2, layout="constrained")
    display = TaskAccuracyDisplay({"a": R, "b": R}).plot(ax=axes)
    assert display.legend_ in figure.legends and _inside(figure, display.legend_)
    display = TaskAccuracyDisplay(R).plot(legend=False)
    assert display.legend_ is None and display.colorbar_ is None
    with pytest.raises(ValueError, match="legend must be True, False or 'auto'"):
        TaskAccuracyDisplay(R).plot(legend="right")
