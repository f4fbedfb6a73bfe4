import numpy as np

from .._online import online_accuracy, prequential_scores
from ._style import task_colors, tick_step

# Names of the diagnostics that a PlasticityMonitor records, as axis labels.
_DIAGNOSTICS = {
    "srank": "srank of the last hidden features",
    "dead_fraction": "fraction of dead hidden features",
    "weight_magnitude": "mean |parameter|",
    "gradient_norm": "gradient norm",
}


class OnlineAccuracyDisplay:
    """The plasticity curve: each task's online accuracy, and a diagnostic beside.

    One line per strategy: the average online accuracy of each task (the
    accuracy of each training batch before its update, averaged over the
    task; :func:`~skcl.metrics.online_accuracy`). A network that loses its
    plasticity draws a falling curve. It reads from a few tasks to hundreds:
    the per-task values are drawn faint and a moving average over them bold.
    An optional second panel draws a diagnostic per task (see
    :class:`~skcl.callbacks.PlasticityMonitor`), which tells why a curve
    falls. It is recommended to create one with :meth:`from_estimator`.

    Parameters
    ----------
    online_accuracies : array-like of shape (n_tasks,) or dict
        Per-task online accuracy, or a dict from a name (the legend) to one.
    diagnostics : array-like of shape (n_tasks,) or dict, default=None
        A diagnostic per task, in the same form (the names of
        ``online_accuracies``).
    diagnostic_name : str, default=None
        The diagnostic's label.
    chance : float, default=None
        The accuracy of guessing, drawn as a dashed line.

    Attributes
    ----------
    lines_ : dict
        The smoothed curve (matplotlib Line2D) of each name.
    ax_ : matplotlib Axes or ndarray of 2 Axes
        The axes (online accuracy, then the diagnostic, if any).
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skcl.metrics import OnlineAccuracyDisplay
    >>> curves = {"baseline": [0.9, 0.7, 0.5], "L2 Init": [0.9, 0.9, 0.88]}
    >>> OnlineAccuracyDisplay(curves, chance=0.1).plot()  # doctest: +SKIP
    """

    def __init__(
        self, online_accuracies, *, diagnostics=None, diagnostic_name=None, chance=None
    ):
        self.online_accuracies = online_accuracies
        self.diagnostics = diagnostics
        self.diagnostic_name = diagnostic_name
        self.chance = chance

    def plot(self, *, smooth="auto", ax=None, line_kw=None):
        """Plot the curves.

        Parameters
        ----------
        smooth : int or "auto", default="auto"
            Width, in tasks, of the moving average drawn bold; 1 for none.
            "auto" is 1 up to 20 tasks, then about a fiftieth of them.
        ax : matplotlib Axes or array-like of 2 Axes, default=None
            Where to draw: one Axes, or two with ``diagnostics``. If None, a
            new figure.
        line_kw : dict, default=None
            Keyword arguments of the bold lines' ``ax.plot``.

        Returns
        -------
        display : OnlineAccuracyDisplay
        """
        import matplotlib.pyplot as plt

        curves = _named(self.online_accuracies, "online_accuracies")
        extra = None
        if self.diagnostics is not None:
            extra = _named(self.diagnostics, "diagnostics")
            if extra.keys() != curves.keys():
                raise ValueError("diagnostics must name the curves' strategies.")
        n_tasks = max(len(v) for v in curves.values())
        window = _window(smooth, n_tasks)
        panels = 1 if extra is None else 2
        if ax is None:
            _, ax = plt.subplots(
                1, panels, figsize=(6.4 * panels, 4.2), layout="constrained"
            )
        axes = np.atleast_1d(ax)
        if len(axes) != panels:
            raise ValueError(f"ax must hold {panels} Axes, got {len(axes)}.")
        colors = dict(zip(curves, task_colors(len(curves)), strict=True))
        self.lines_ = {}
        for name, values in curves.items():
            self.lines_[name] = _draw(
                axes[0], values, window, colors[name], name, line_kw
            )
        if self.chance is not None:
            axes[0].axhline(self.chance, color="black", linestyle="--", label="chance")
        axes[0].set_ylabel("online accuracy of the task")
        axes[0].set_ylim(0, 1.02)
        if any(curves) or self.chance is not None:
            axes[-1].legend(
                *axes[0].get_legend_handles_labels(),
                loc="upper left",
                bbox_to_anchor=(1.01, 1),
                fontsize="small",
            )
        if extra is not None:
            for name, values in extra.items():
                _draw(axes[1], values, window, colors[name], name, line_kw)
            axes[1].set_ylabel(self.diagnostic_name or "diagnostic")
        for a in axes:
            a.set_xlabel("task")
            a.xaxis.set_major_locator(
                plt.MultipleLocator(tick_step(n_tasks, max_ticks=10))
            )
        if window > 1:
            axes[0].set_title(f"moving average over {window} tasks", fontsize="small")
        self.ax_ = axes[0] if panels == 1 else axes
        self.figure_ = axes[0].figure
        return self

    @classmethod
    def from_estimator(
        cls, estimators, *, diagnostic=None, chance=None, ax=None, **kwargs
    ):
        """Plot the online accuracy that fitted estimators recorded.

        Parameters
        ----------
        estimators : estimator or dict
            A continual estimator fitted with a
            :class:`~skcl.callbacks.PrequentialScore` callback, or a dict from
            a name to one.
        diagnostic : {"srank", "dead_fraction", "weight_magnitude", \
"gradient_norm"}, default=None
            A diagnostic recorded by a :class:`~skcl.callbacks.PlasticityMonitor`
            among the estimators' callbacks, drawn per task beside (its mean
            over the task's chunks).
        chance : float, default=None
            The accuracy of guessing, drawn dashed.
        ax : matplotlib Axes or array-like of Axes, default=None
            See :meth:`plot`.
        **kwargs : dict
            Further keyword arguments of :meth:`plot`.

        Returns
        -------
        display : OnlineAccuracyDisplay
        """
        named = estimators if isinstance(estimators, dict) else {"": estimators}
        curves = {
            name: online_accuracy(*prequential_scores(e)) for name, e in named.items()
        }
        extra = None
        if diagnostic is not None:
            if diagnostic not in _DIAGNOSTICS:
                raise ValueError(
                    f"diagnostic must be one of {sorted(_DIAGNOSTICS)}, got "
                    f"{diagnostic!r}."
                )
            extra = {name: _recorded(e, diagnostic) for name, e in named.items()}
        display = cls(
            curves,
            diagnostics=extra,
            diagnostic_name=_DIAGNOSTICS.get(diagnostic),
            chance=chance,
        )
        return display.plot(ax=ax, **kwargs)


def _named(values, what):
    named = values if isinstance(values, dict) else {"": values}
    checked = {}
    for name, curve in named.items():
        curve = np.asarray(curve, dtype=float)
        if curve.ndim != 1 or not len(curve):
            raise ValueError(f"{what} must hold non-empty 1-D arrays, one per task.")
        checked[name] = curve
    return checked


def _window(smooth, n_tasks):
    if isinstance(smooth, str) and smooth == "auto":
        return 1 if n_tasks <= 20 else max(2, round(n_tasks / 50))
    if isinstance(smooth, (int, np.integer)) and smooth >= 1:
        return int(smooth)
    raise ValueError(f'smooth must be an int >= 1 or "auto", got {smooth!r}.')


def _draw(ax, values, window, color, name, line_kw):
    tasks = np.arange(len(values))
    if window > 1:
        ax.plot(tasks, values, color=color, alpha=0.25, linewidth=0.8)
        kernel = np.ones(window) / window
        smoothed = np.convolve(values, kernel, mode="valid")
        tasks = tasks[window - 1 :]
        values = smoothed
    (line,) = ax.plot(
        tasks,
        values,
        color=color,
        label=name or None,
        **{"linewidth": 1.8, **(line_kw or {})},
    )
    return line


def _recorded(estimator, diagnostic):
    from ...callbacks import PlasticityMonitor
    from .._matrix import _unwrap

    estimator, _ = _unwrap(estimator, None)
    found = [
        cb for _, cb in estimator.net_.callbacks_ if isinstance(cb, PlasticityMonitor)
    ]
    if not found:
        raise ValueError(
            "the estimator recorded no diagnostics: fit it with "
            "callbacks=[skcl.callbacks.PlasticityMonitor()]."
        )
    tasks = np.asarray(found[0].training_task_)
    values = np.asarray(getattr(found[0], f"{diagnostic}_"), dtype=float)
    return np.array([values[tasks == t].mean() for t in dict.fromkeys(tasks.tolist())])
