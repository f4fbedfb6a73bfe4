from itertools import product

import numpy as np

from .._matrix import _accuracy_matrix
from ._style import MAX_ANNOTATED, fitting_fontsize, tick_step
from ._validation import _check_display_matrix


class AccuracyMatrixDisplay:
    """Heatmap of an accuracy matrix, with the scores written in the cells.

    Rows are the training steps (after training task ``t``), columns the
    evaluated tasks. It reads from a few tasks to long streams: the scores are
    written while they fit (up to 12 tasks by default) and at most about ten
    ticks are labelled. It is recommended to create one with
    :meth:`from_estimator` or :meth:`from_matrix`. All parameters are stored as
    attributes.

    Parameters
    ----------
    accuracy_matrix : ndarray of shape (n_tasks, n_columns)
        ``R[t, i]``, the score on task ``i`` after training task ``t``, as
        returned by :func:`~skcl.metrics.accuracy_matrix`. ``n_columns`` exceeds
        ``n_tasks`` when the columns of untrained tasks were appended.

    task_labels : array-like of shape (n_columns,), default=None
        Task of each column (the rows take the first ``n_tasks``). If None,
        ``0`` to ``n_columns - 1``.

    Attributes
    ----------
    im_ : matplotlib AxesImage
        Image of the matrix.

    text_ : ndarray of shape (n_tasks, n_columns) of matplotlib Text, or None
        The scores written in the cells; None if they were not written.

    colorbar_ : matplotlib Colorbar or None
        The colorbar; None if ``colorbar=False``.

    ax_ : matplotlib Axes
        Axes with the heatmap.

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

        ax : matplotlib Axes, default=None
            Axes to plot on. If None, a new figure (with constrained layout,
            sized to the number of tasks) and axes are created.

        im_kw : dict, default=None
            Keyword arguments of ``ax.imshow``, e.g. ``vmin`` and ``vmax``.

        text_kw : dict, default=None
            Keyword arguments of ``ax.text``, e.g. ``fontsize``.

        Returns
        -------
        display : AccuracyMatrixDisplay
            The display, with the artists as attributes.
        """
        import matplotlib.pyplot as plt

        R, labels = _check_display_matrix(
            self.accuracy_matrix, self.task_labels, "accuracy_matrix"
        )
        if include_values not in (True, False, "auto"):
            raise ValueError(
                f"include_values must be True, False or 'auto', got {include_values!r}."
            )
        values_format = ".2f" if values_format is None else values_format
        n_tasks, n_columns = R.shape
        if ax is None:
            side = min(max(0.45 * n_columns + 1.5, 4.0), 7.5)
            _, ax = plt.subplots(
                figsize=(side + 1.0, min(max(0.45 * n_tasks + 1.2, 3.5), 7.0)),
                layout="constrained",
            )

        self.im_ = ax.imshow(
            R, **{"interpolation": "nearest", "cmap": cmap, **(im_kw or {})}
        )
        self.colorbar_ = ax.figure.colorbar(self.im_, ax=ax) if colorbar else None
        self.text_ = None
        if include_values is True or (
            include_values == "auto" and n_columns <= MAX_ANNOTATED
        ):
            self.text_ = np.empty(R.shape, dtype=object)
            dark, bright = self.im_.cmap(0.0), self.im_.cmap(1.0)
            sample = format(np.nanmax(np.abs(R)), values_format)
            text_kw = {
                "ha": "center",
                "va": "center",
                "fontsize": fitting_fontsize(ax, n_tasks, n_columns, sample),
                **(text_kw or {}),
            }
            for t, i in product(range(n_tasks), range(n_columns)):
                color = dark if self.im_.norm(R[t, i]) >= 0.5 else bright
                self.text_[t, i] = ax.text(
                    i, t, format(R[t, i], values_format), **{"color": color, **text_kw}
                )
        step = tick_step(n_columns)
        ax.set(
            xticks=np.arange(0, n_columns, step),
            yticks=np.arange(0, n_tasks, step),
            xticklabels=labels[::step],
            yticklabels=labels[:n_tasks:step],
            xlabel="Evaluated task",
            ylabel="After training task",
        )
        self.ax_ = ax
        self.figure_ = ax.figure
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
        estimator : estimator object
            A fitted continual estimator that kept its snapshots.

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
        R, labels = _accuracy_matrix(
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
        accuracy_matrix : array-like of shape (n_tasks, n_columns)
            ``R[t, i]``, the score on task ``i`` after training task ``t``.

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
