"""The plot of a plasticity stream's benchmark: the plasticity curves."""

from pathlib import Path

import numpy as np


def write_online_plots(results, output, *, stream):
    """Plot each strategy's online accuracy per task, the mean over its seeds
    (smoothed from 20 tasks on), in ``online_accuracy.png``; return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..metrics import OnlineAccuracyDisplay

    curves = {}
    for r in results:
        if not r["diverged"]:
            curves.setdefault(r["strategy"], []).append(r["online_accuracy"])
    if not curves:
        return []
    display = OnlineAccuracyDisplay(
        {name: np.mean(runs, axis=0) for name, runs in curves.items()}, chance=0.1
    ).plot()
    n_seeds = max(len(runs) for runs in curves.values())
    display.figure_.suptitle(
        f"Online accuracy per task on {stream}, "
        + (f"mean of {n_seeds} seeds" if n_seeds > 1 else "1 seed")
    )
    path = Path(output) / "online_accuracy.png"
    display.figure_.savefig(path, dpi=100)
    plt.close(display.figure_)
    return [path]
