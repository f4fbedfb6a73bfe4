from itertools import product

import numpy as np

from ._style import (
    MAX_ANNOTATED,
    PANELS_PER_ROW,
    fitting_fontsize,
    panel_grid,
    tick_step,
)
from ._validation import _check_axes, _check_display_matrices, _estimator_matrices


class AccuracyMatrixDisplay:
    """Heatmap of an accuracy matrix, with the scores written in the cells.

    Rows are the training steps (after training task ``t``), columns the
    evaluated tasks. It reads from a few tasks to long streams: the scores are
    written while they fit (up to 12 tasks by default) and at most about ten
    ticks are labelled. Several matrices (a dict, e.g. strategies on the same
    stream) are drawn side by side, one panel each (at most three per row), on
    one colour scale with one colorbar. It is recommended to create one with
    :meth:`from_estimator` or :meth:`from_matrix`. All parameters are stored as
    attributes.

    Parameters
    ----------
    accuracy_matrix : ndarray of shape (n_tasks, n_columns) or dict
        ``R[t, i]``, the score on task ``i`` after training task ``t``, as
        returned by :func:`~skcl.metrics.accuracy_matrix`, or a dict mapping a
        name (the panel's title) to one, all of the same shape. ``n_columns``
        exceeds ``n_tasks`` when the columns of untrained tasks were appended.

    task_labels : array-like of shape (n_columns,), default=None
        Task of each column (the rows take the first ``n_tasks``). If None,
        ``0`` to ``n_columns - 1``.

    Attributes
    ----------
    im_ : matplotlib AxesImage or ndarray of shape (n_matrices,) of AxesImage
        Image of the matrix, or one per matrix when a dict was given.

    text_ : ndarray of matplotlib Text, or None
        The scores written in the cells, of shape (n_tasks, n_columns), or
        (n_matrices, n_tasks, n_columns) when a dict was given; None if they
        were not written.

    colorbar_ : matplotlib Colorbar or None
        The colorbar, one for all the panels; None if ``colorbar=False``.

    ax_ : matplotlib Axes or ndarray of shape (n_matrices,) of Axes
        Axes with the heatmap, or one per matrix when a dict was given.

    figure_ : matplotlib Figure
        Figure containing the heatmap.

    See Also
    --------
    accuracy_matrix : Compute the accuracy matrix.
    TaskAccuracyDisplay : The score on each task along training.

    Examples
    --------
    >>> from skcl.metrics import AccuracyMatrixDisplay
    >>> R = [[0.95, 0.10], [0.70, 0.93]]
    >>> AccuracyMatrixDisplay.from_matrix(R, task_labels=["a", "b"])  # doctest: +SKIP
    >>> naive, ewc = [[0.95, 0.10], [0.40, 0.93]], [[0.95, 0.10], [0.80, 0.90]]
    >>> matrices = {"naive": naive, "ewc": ewc}  # one panel each, one colour scale
    >>> AccuracyMatrixDisplay.from_matrix(matrices)  # doctest: +SKIP
    """

    def __init__(self, accuracy_matrix, *, task_labels=None):
        self.accuracy_matrix = accuracy_matrix
        self.task_labels = task_labels

    def plot(
        self,
        *,
        include_values="auto",
        values_format=None,
        cmap="viridis",
        colorbar=True,
        ax=None,
        im_kw=None,
        text_kw=None,
    ):
        """Plot the heatmap.

        Parameters
        ----------
        include_values : bool or "auto", default="auto"
            Whether to write the scores in the cells. "auto" writes them while
            they fit: up to 12 columns, in a font sized to the cells. Beyond,
            the colours and the colorbar carry the values.

        values_format : str, default=None
            Format specification of the scores. If None, ``".2f"``.

        cmap : str or matplotlib Colormap, default="viridis"
            Colormap of the heatmap.

        colorbar : bool, default=True
            Whether to add a colorbar.

        ax : matplotlib Axes or array-like of Axes, default=None
            Axes to plot on, one per matrix. If None, a new figure (with
            constrained layout, sized to the number of tasks) is created, with
            a grid of panels (at most 3 per row) for a dict of matrices.

        im_kw : dict, default=None
            Keyword arguments of ``ax.imshow``, e.g. ``vmin`` and ``vmax``.
            Several matrices share one colour scale: by default from the
            smallest to the largest score of them all.

        text_kw : dict, default=None
            Keyword arguments of ``ax.text``, e.g. ``fontsize``.

        Returns
        -------
        display : AccuracyMatrixDisplay
            The display, with the artists as attributes.
        """
        import matplotlib.pyplot as plt

        several = isinstance(self.accuracy_matrix, dict)
        matrices, labels = _check_display_matrices(
            self.accuracy_matrix, self.task_labels, "accuracy_matrix"
        )
        if include_values not in (True, False, "auto"):
            raise ValueError(
                f"include_values must be True, False or 'auto', got {include_values!r}."
            )
        n_tasks, n_columns = next(iter(matrices.values())).shape
        if ax is None:
            side = min(max(0.45 * n_columns + 1.5, 4.0), 7.5)
            height = min(max(0.45 * n_tasks + 1.2, 3.5), 7.0)
            axes = panel_grid(
                plt,
                len(matrices),
                (side, height) if several else (side + 1.0, height),
                extra_width=1.0 if several else 0.0,
            )
        else:
            axes = _check_axes(ax, len(matrices))
        im_kw = {"interpolation": "nearest", "cmap": cmap, **(im_kw or {})}
        if several:
            values = np.concatenate([R.ravel() for R in matrices.values()])
            im_kw.setdefault("vmin", np.nanmin(values))
            im_kw.setdefault("vmax", np.nanmax(values))
        images = [
            a.imshow(R, **im_kw) for a, R in zip(axes, matrices.values(), strict=True)
        ]
        self.colorbar_ = (
            axes[0].figure.colorbar(images[0], ax=list(axes) if several else axes[0])
            if colorbar
            else None
        )
        texts = None
        if include_values is True or (
            include_values == "auto" and n_columns <= MAX_ANNOTATED
        ):
            values_format = ".2f" if values_format is None else values_format
            texts = [
                _annotate(a, image, values_format, text_kw)
                for a, image in zip(axes, images, strict=True)
            ]
        step = tick_step(n_columns)
        for k, name in enumerate(matrices):
            first_column = ax is None and k % PANELS_PER_ROW == 0
            axes[k].set(
                xticks=np.arange(0, n_columns, step),
                yticks=np.arange(0, n_tasks, step),
                xticklabels=labels[::step],
                yticklabels=labels[:n_tasks:step],
                xlabel="Evaluated task",
                ylabel="After training task" if k == 0 or first_column else None,
                title=name,
            )
        self.im_ = np.array(images, dtype=object) if several else images[0]
        if texts is not None:
            texts = np.array(texts, dtype=object) if several else texts[0]
        self.text_ = texts
        self.ax_ = axes if several else axes[0]
        self.figure_ = axes[0].figure
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
        include_untrained=False,
        include_values="auto",
        values_format=None,
        cmap="viridis",
        colorbar=True,
        ax=None,
        im_kw=None,
        text_kw=None,
    ):
        """Plot the accuracy matrix of a fitted continual estimator.

        Parameters
        ----------
        estimator : estimator object or dict of str to estimator object
            A fitted continual estimator that kept its snapshots, or a dict
            mapping a name to one, all trained on the same tasks in the same
            order, drawn side by side.

        X : array-like of shape (n_samples, n_features)
            Held-out samples of all the trained tasks.

        y : array-like of shape (n_samples,)
            Their targets.

        task_id : array-like of shape (n_samples,)
            The task of each sample.

        scoring : str or callable, default=None
            Per-task score, as in :func:`~skcl.metrics.accuracy_matrix`.

        include_untrained : bool, default=False
            Whether to add columns for held-out tasks never trained.

        include_values, values_format, cmap, colorbar, ax, im_kw, text_kw
            See :meth:`plot`.

        Returns
        -------
        display : AccuracyMatrixDisplay
            The display, labelled with the task ids.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skcl import ContinualClassifier
        >>> from skcl.metrics import AccuracyMatrixDisplay
        >>> X, y = load_digits(return_X_y=True)
        >>> X = (X / 16).astype(np.float32)
        >>> task = np.arange(len(X)) % 3
        >>> clf = ContinualClassifier(max_epochs=1, random_state=0)
        >>> clf = clf.fit(X, y, task_id=task)
        >>> AccuracyMatrixDisplay.from_estimator(clf, X, y, task)  # doctest: +SKIP
        """
        R, labels = _estimator_matrices(
            estimator,
            X,
            y,
            task_id,
            scoring=scoring,
            include_untrained=include_untrained,
        )
        return cls(R, task_labels=labels).plot(
            include_values=include_values,
            values_format=values_format,
            cmap=cmap,
            colorbar=colorbar,
            ax=ax,
            im_kw=im_kw,
            text_kw=text_kw,
        )

    @classmethod
    def from_matrix(
        cls,
        accuracy_matrix,
        *,
        task_labels=None,
        include_values="auto",
        values_format=None,
        cmap="viridis",
        colorbar=True,
        ax=None,
        im_kw=None,
        text_kw=None,
    ):
        """Plot an accuracy matrix.

        Parameters
        ----------
        accuracy_matrix : array-like of shape (n_tasks, n_columns) or dict
            ``R[t, i]``, the score on task ``i`` after training task ``t``, or
            a dict mapping a name to one, all of the same shape, drawn side by
            side on one colour scale.

        task_labels : array-like of shape (n_columns,), default=None
            Task of each column. If None, ``0`` to ``n_columns - 1``.

        include_values, values_format, cmap, colorbar, ax, im_kw, text_kw
            See :meth:`plot`.

        Returns
        -------
        display : AccuracyMatrixDisplay
            The display.

        Examples
        --------
        >>> from skcl.metrics import AccuracyMatrixDisplay
        >>> R = [[0.95, 0.10], [0.70, 0.93]]
        >>> AccuracyMatrixDisplay.from_matrix(R)  # doctest: +SKIP
        """
        return cls(accuracy_matrix, task_labels=task_labels).plot(
            include_values=include_values,
            values_format=values_format,
            cmap=cmap,
            colorbar=colorbar,
            ax=ax,
            im_kw=im_kw,
            text_kw=text_kw,
        )


def _annotate(ax, image, values_format, text_kw):
    """Write the scores of ``image`` in its cells, contrasting with each cell."""
    R = image.get_array()
    n_tasks, n_columns = R.shape
    texts = np.empty(R.shape, dtype=object)
    dark, bright = image.cmap(0.0), image.cmap(1.0)
    sample = format(np.nanmax(np.abs(R)), values_format)
    text_kw = {
        "ha": "center",
        "va": "center",
        "fontsize": fitting_fontsize(ax, n_tasks, n_columns, sample),
        **(text_kw or {}),
    }
    for t, i in product(range(n_tasks), range(n_columns)):
        color = dark if image.norm(R[t, i]) >= 0.5 else bright
        texts[t, i] = ax.text(
            i, t, format(R[t, i], values_format), **{"color": color, **text_kw}
        )
    return texts
