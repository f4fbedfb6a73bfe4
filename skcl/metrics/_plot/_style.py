"""Choices that keep the displays readable from a few tasks to a long stream."""

import math

import numpy as np

# Annotate the heatmap's cells while there are at most this many columns.
MAX_ANNOTATED = 12
# Beyond this many tasks, a legend is taller than a figure: a colorbar instead.
MAX_LEGEND = 20
# A legend inside the axes hides the curves beyond this many tasks.
MAX_INSIDE_LEGEND = 10
# Several matrices are drawn in a grid of panels, at most this many per row.
PANELS_PER_ROW = 3
_NICE_STEPS = (1, 2, 5)


def tick_step(n, max_ticks=10):
    """Return the smallest step in 1, 2, 5, 10, 20, 50, ... giving ``max_ticks``."""
    for power in range(12):
        for base in _NICE_STEPS:
            step = base * 10**power
            if math.ceil(n / step) <= max_ticks:
                return step
    return n


def task_colors(n, cmap=None):
    """Return ``n`` colours, one per task.

    By default tab10 up to 10 tasks; up to 20, tab20's ten dark hues for the
    first ten tasks and its ten light ones for the next (neighbouring tasks
    never share a hue, and :func:`task_marker` tells a hue's two tasks
    apart); viridis sampled evenly beyond, so that task order reads as a
    gradient. A listed colormap with enough colours gives its first ``n``;
    any other is sampled evenly.
    """
    import matplotlib as mpl

    if cmap is None and 10 < n <= MAX_LEGEND:
        tab20 = mpl.colormaps["tab20"].colors
        return [*tab20[0::2], *tab20[1::2]][:n]
    if cmap is None:
        cmap = "tab10" if n <= 10 else "viridis"
    cmap = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
    if isinstance(cmap, mpl.colors.ListedColormap) and cmap.N >= n and cmap.N <= 20:
        return [cmap(i) for i in range(n)]
    return [cmap(x) for x in np.linspace(0, 1, n)]


def task_marker(i):
    """The marker of task ``i``: circles for the first ten, then squares."""
    return "o" if i < 10 else "s"


def fitting_fontsize(ax, n_rows, n_columns, sample):
    """Font size (points) at which ``sample`` fits in a cell of ``ax``'s grid.

    The cells are square (``imshow``), so the smaller side bounds them.
    """
    import matplotlib as mpl

    figure = ax.figure
    box = ax.get_position()
    width_pt = box.width * figure.get_figwidth() * 72
    height_pt = box.height * figure.get_figheight() * 72
    cell = min(width_pt / n_columns, height_pt / n_rows)
    # A digit is about 0.6 em wide; leave a margin of 15% of the cell.
    size = 0.85 * cell / (0.6 * max(len(sample), 1))
    return min(size, mpl.rcParams["font.size"])


def panel_grid(plt, n_panels, panel_size, *, extra_width=0.0, sharey=False):
    """A constrained-layout figure of ``n_panels`` axes, at most 3 per row.

    ``panel_size`` is one panel's (width, height) in inches; ``extra_width``
    leaves room for a legend or a colorbar beside the panels.
    """
    n_cols = min(n_panels, PANELS_PER_ROW)
    n_rows = -(-n_panels // n_cols)
    _, axes = plt.subplots(
        n_rows,
        n_cols,
        sharey=sharey,
        squeeze=False,
        figsize=(panel_size[0] * n_cols + extra_width, panel_size[1] * n_rows),
        layout="constrained",
    )
    axes = axes.ravel()
    for extra in axes[n_panels:]:
        extra.remove()
    return axes[:n_panels]
