import numpy as np

from ._style import (
    MAX_INSIDE_LEGEND,
    MAX_LEGEND,
    PANELS_PER_ROW,
    panel_grid,
    task_colors,
    task_marker,
    tick_step,
)
from ._validation import _check_axes, _check_display_matrices, _estimator_matrices


class TaskAccuracyDisplay:
    """Score on each task after each training step: the forgetting curves.

    One line per task; several estimators (e.g. strategies trained on the same
    stream) are drawn side by side, one subplot each (at most three per row),
    sharing the y axis. It reads from a few tasks to long streams: distinct
    colours and a legend up to 20 tasks, a colour gradient and a colorbar
    beyond, and at most about ten labelled ticks. It is
    recommended to create one with :meth:`from_estimator` or
    :meth:`from_matrix`. All parameters are stored as attributes.

    Parameters
    ----------
    accuracy_matrices : ndarray of shape (n_tasks, n_columns) or dict
        An accuracy matrix ``R`` (``R[t, i]`` is the score on task ``i`` after
        training task ``t``), or a dict mapping a name (the subplot title) to
        one, all of the same shape.

    task_labels : array-like of shape (n_columns,), default=None
        Task of each column (the training steps take the first ``n_tasks``).
        If None, ``0`` to ``n_columns - 1``.

    steps : array-like of shape (n_rows,), default=None
        For curves recorded during training (see :meth:`from_monitor`): the
        training step of each row, so that rows are records rather than tasks.

    training_task : array-like of shape (n_rows,), default=None
        With ``steps``: the index of the task trained at each row.

    Attributes
    ----------
    lines_ : ndarray of shape (n_matrices, n_columns) of matplotlib Line2D
        The curve of each task in each subplot; None for the columns of tasks
        never trained when ``trained_only=True``.

    ax_ : matplotlib Axes or ndarray of shape (n_matrices,) of Axes
        The axes, or one per matrix when a dict of matrices was given.

    legend_ : matplotlib Legend or None
        The legend naming the tasks, if drawn.

    colorbar_ : matplotlib Colorbar or None
        The colorbar from task to colour, drawn instead of a legend for more
        than 20 tasks.

    figure_ : matplotlib Figure
        Figure containing the curves.

    See Also
    --------
    accuracy_matrix : Compute the accuracy matrix.
    AccuracyMatrixDisplay : Heatmap of the accuracy matrix.

    Examples
    --------
    >>> from skcl.metrics import TaskAccuracyDisplay
    >>> naive = [[0.95, 0.10], [0.40, 0.93]]
    >>> ewc = [[0.95, 0.10], [0.80, 0.90]]
    >>> TaskAccuracyDisplay.from_matrix({"naive": naive, "ewc": ewc})  # doctest: +SKIP
    """

    def __init__(
        self, accuracy_matrices, *, task_labels=None, steps=None, training_task=None
    ):
        self.accuracy_matrices = accuracy_matrices
        self.task_labels = task_labels
        self.steps = steps
        self.training_task = training_task

    def plot(
        self, *, trained_only=True, cmap=None, legend="auto", ax=None, line_kw=None
    ):
        """Plot the curves.

        Parameters
        ----------
        trained_only : bool, default=True
            Whether each task's curve starts at the step that trains it. If
            False, the curves span all the steps, showing the scores before
            training too.

        cmap : str or matplotlib Colormap, default=None
            Colours of the tasks. If None, tab10 up to 10 tasks; up to 20,
            tab20's dark hues for tasks 0-9 and its light ones for 10-19 (with
            square markers instead of circles), so that neighbouring tasks
            never share a hue; viridis beyond (early tasks dark, late ones
            bright). A qualitative colormap with enough colours gives its
            first ones; others are sampled evenly.

        legend : bool or "auto", default="auto"
            Whether to name the tasks in a legend. The legend is a figure
            legend beside the panels when the figure has constrained layout
            (as the figures made here do), else inside the last axes, so that
            a plain ``savefig`` keeps it. "auto" draws a legend up to 20 tasks
            (10 inside the axes) and, beyond, a colorbar from task to colour,
            which takes its room from the axes.

        ax : matplotlib Axes or array-like of Axes, default=None
            One Axes per matrix. If None, a new figure with a grid of panels
            (at most 3 per row) sharing the y axis is created. Given Axes get
            the same y limits too, so that panels compare.

        line_kw : dict, default=None
            Keyword arguments of ``ax.plot``.

        Returns
        -------
        display : TaskAccuracyDisplay
            The display, with the artists as attributes.
        """
        import matplotlib as mpl
        import matplotlib.pyplot as plt

        if legend not in (True, False, "auto"):
            raise ValueError(f"legend must be True, False or 'auto', got {legend!r}.")
        several = isinstance(self.accuracy_matrices, dict)
        matrices, labels = _check_display_matrices(
            self.accuracy_matrices,
            self.task_labels,
            "accuracy_matrices",
            rows_are_tasks=self.steps is None,
        )
        n_tasks, n_columns = next(iter(matrices.values())).shape
        if ax is None:
            as_legend = legend is True or (legend == "auto" and n_columns <= MAX_LEGEND)
            n_legend = n_columns if as_legend else 0
            axes = panel_grid(
                plt,
                len(matrices),
                (3.8, 3.2) if len(matrices) > 1 else (4.8, 3.6),
                extra_width=1.2 * -(-n_legend // 10) if n_legend else 1.0,
                sharey=True,
            )
        else:
            axes = _check_axes(ax, len(matrices))
        figure = axes[0].figure
        constrained = isinstance(
            figure.get_layout_engine(), mpl.layout_engine.ConstrainedLayoutEngine
        )
        # Without constrained layout the legend goes inside the axes, where
        # more than 10 entries would hide the curves.
        as_legend = legend is True or (
            legend == "auto"
            and n_columns <= (MAX_LEGEND if constrained else MAX_INSIDE_LEGEND)
        )

        if self.steps is None:
            steps, starts = np.arange(n_tasks), np.arange(n_columns)
        else:
            steps = np.asarray(self.steps)
            if self.training_task is None or not (
                len(steps) == len(self.training_task) == n_tasks
            ):
                raise ValueError(
                    "steps and training_task must both have one entry per row."
                )
            starts = np.searchsorted(
                np.asarray(self.training_task), np.arange(n_columns)
            )
        colors = task_colors(n_columns, cmap)
        style = {"linewidth": 1.5 if n_columns <= 10 else 1.0}
        markers = self.steps is None and n_tasks <= MAX_LEGEND
        if markers:
            style.update(markersize=4 if n_columns <= 10 else 3)
        self.lines_ = np.full((len(matrices), n_columns), None, dtype=object)
        for k, (name, R) in enumerate(matrices.items()):
            for i in range(n_columns):
                start = starts[i] if trained_only else 0
                if start < n_tasks:
                    (self.lines_[k, i],) = axes[k].plot(
                        steps[start:],
                        R[start:, i],
                        **{
                            **style,
                            **({"marker": task_marker(i)} if markers else {}),
                            "color": colors[i],
                            "label": f"task {labels[i]}",
                            **(line_kw or {}),
                        },
                    )
            if self.steps is None:
                every = tick_step(n_tasks)
                axes[k].set(
                    xticks=steps[::every],
                    xticklabels=labels[:n_tasks:every],
                    xlabel="After training task",
                )
            else:
                axes[k].set(xlabel="Training batches")
            first_column = ax is None and k % PANELS_PER_ROW == 0
            axes[k].set(ylabel="Score" if k == 0 or first_column else None, title=name)
        low = min(a.get_ylim()[0] for a in axes)
        high = max(a.get_ylim()[1] for a in axes)
        for a in axes:
            a.set_ylim(low, high)

        self.legend_ = self.colorbar_ = None
        drawn = [line for line in self.lines_.ravel() if line is not None]
        handles = list({line.get_label(): line for line in drawn}.values())
        if as_legend and handles:
            ncols = -(-len(handles) // 10)
            if constrained:
                self.legend_ = figure.legend(
                    handles=handles, loc="outside right upper", ncols=ncols
                )
            else:
                self.legend_ = axes[-1].legend(
                    handles=handles, loc="best", fontsize="small", ncols=ncols
                )
        elif legend == "auto" and handles:
            norm = mpl.colors.Normalize(-0.5, n_columns - 0.5)
            mappable = mpl.cm.ScalarMappable(
                norm=norm, cmap=mpl.colors.ListedColormap(colors)
            )
            self.colorbar_ = figure.colorbar(mappable, ax=list(axes), label="Task")
            ticks = np.arange(0, n_columns, tick_step(n_columns))
            self.colorbar_.set_ticks(ticks, labels=[labels[i] for i in ticks])
        self.ax_ = axes if several else axes[0]
        self.figure_ = figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        task_id,
        *,
        scoring=None,
        trained_only=True,
        cmap=None,
        legend="auto",
        ax=None,
        line_kw=None,
    ):
        """Plot the forgetting curves of one or several fitted continual estimators.

        Parameters
        ----------
        estimator : estimator object or dict of str to estimator object
            A fitted continual estimator that kept its snapshots, or a dict
            mapping a name to one, all trained on the same tasks in the same
            order (e.g. ``{"naive": clf1, "ewc": clf2}``), drawn side by side.

        X : array-like of shape (n_samples, n_features)
            Held-out samples of all the trained tasks.

        y : array-like of shape (n_samples,)
            Their targets.

        task_id : array-like of shape (n_samples,)
            The task of each sample.

        scoring : str or callable, default=None
            Per-task score, as in :func:`~skcl.metrics.accuracy_matrix`.

        trained_only, cmap, legend, ax, line_kw
            See :meth:`plot`.

        Returns
        -------
        display : TaskAccuracyDisplay
            The display, labelled with the task ids.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skcl import ContinualClassifier
        >>> from skcl.metrics import TaskAccuracyDisplay
        >>> X, y = load_digits(return_X_y=True)
        >>> X = (X / 16).astype(np.float32)
        >>> task = np.arange(len(X)) % 3
        >>> clf = ContinualClassifier(max_epochs=1, random_state=0)
        >>> clf = clf.fit(X, y, task_id=task)
        >>> TaskAccuracyDisplay.from_estimator(clf, X, y, task)  # doctest: +SKIP
        """
        matrices, task_labels = _estimator_matrices(
            estimator, X, y, task_id, scoring=scoring, include_untrained=False
        )
        return cls(matrices, task_labels=task_labels).plot(
            trained_only=trained_only, cmap=cmap, legend=legend, ax=ax, line_kw=line_kw
        )

    @classmethod
    def from_matrix(
        cls,
        accuracy_matrices,
        *,
        task_labels=None,
        trained_only=True,
        cmap=None,
        legend="auto",
        ax=None,
        line_kw=None,
    ):
        """Plot the forgetting curves of one or several accuracy matrices.

        Parameters
        ----------
        accuracy_matrices : array-like of shape (n_tasks, n_columns) or dict
            An accuracy matrix, or a dict mapping a name to one, all of the same
            shape, drawn side by side.

        task_labels : array-like of shape (n_columns,), default=None
            Task of each column. If None, ``0`` to ``n_columns - 1``.

        trained_only, cmap, legend, ax, line_kw
            See :meth:`plot`.

        Returns
        -------
        display : TaskAccuracyDisplay
            The display.

        Examples
        --------
        >>> from skcl.metrics import TaskAccuracyDisplay
        >>> R = [[0.95, 0.10], [0.70, 0.93]]
        >>> TaskAccuracyDisplay.from_matrix(R, task_labels=["a", "b"])  # doctest: +SKIP
        """
        return cls(accuracy_matrices, task_labels=task_labels).plot(
            trained_only=trained_only, cmap=cmap, legend=legend, ax=ax, line_kw=line_kw
        )

    @classmethod
    def from_monitor(
        cls,
        monitors,
        *,
        metric="score",
        trained_only=True,
        cmap=None,
        legend="auto",
        ax=None,
        line_kw=None,
    ):
        """Plot the curves a :class:`skcl.callbacks.TaskMonitor` recorded.

        Parameters
        ----------
        monitors : TaskMonitor or dict of str to TaskMonitor
            A fitted monitor (``dict(clf.net_.callbacks_)["TaskMonitor"]``), or
            several by name; they must have the same records (same stream and
            recording schedule).

        metric : {"score", "loss"}, default="score"
            What to plot.

        trained_only : bool, default=True
            Whether each task's curve starts when that task starts training.

        cmap, legend : see :meth:`plot`.

        ax : matplotlib Axes or array-like of Axes, default=None
            One Axes per monitor.

        line_kw : dict, default=None
            Keyword arguments of ``ax.plot``.

        Returns
        -------
        display : TaskAccuracyDisplay
        """
        if metric not in ("score", "loss"):
            raise ValueError(f"metric must be 'score' or 'loss', got {metric!r}.")
        several = isinstance(monitors, dict)
        named = monitors if several else {None: monitors}
        first = next(iter(named.values()))
        curves = {
            name: np.array(getattr(m, "scores_" if metric == "score" else "losses_"))
            for name, m in named.items()
        }
        display = cls(
            curves if several else curves[None],
            task_labels=first.tasks_,
            steps=first.steps_,
            training_task=first.training_task_,
        )
        display.plot(
            trained_only=trained_only, cmap=cmap, legend=legend, ax=ax, line_kw=line_kw
        )
        if metric == "loss":
            for axes in np.ravel(display.ax_):
                if axes.get_ylabel():
                    axes.set_ylabel("Loss")
        return display
