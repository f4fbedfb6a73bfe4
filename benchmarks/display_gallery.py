"""The displays of ``skcl.metrics`` at 5, 20 and 50 tasks, for the docs gallery.

Plain SGD, L2 and EWC on permuted digits; for each stream length, the accuracy
matrix heatmap, the forgetting curves of the three strategies (a figure made
by skcl, and the user's own axes saved with a plain ``savefig``) and the curves
a ``TaskMonitor`` recorded during training.

    python benchmarks/display_gallery.py --output docs/images
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from PIL import Image

from skcl import ContinualClassifier
from skcl.callbacks import TaskMonitor
from skcl.datasets import load_digits_stream
from skcl.metrics import AccuracyMatrixDisplay, TaskAccuracyDisplay
from skcl.penalties import EWC, L2

STRATEGIES = {"naive": None, "l2": L2(lam=0.1), "ewc": EWC(lam=30.0)}


def fit_all(n_tasks):
    X, X_test, y, y_test, t, t_test = load_digits_stream(
        "permuted", n_tasks=n_tasks, random_state=0
    )
    fitted = {}
    for name, penalty in STRATEGIES.items():
        callbacks = [TaskMonitor(X_test, y_test, t_test)] if name == "naive" else []
        clf = ContinualClassifier(
            module__hidden_sizes=(100, 100),
            penalty=penalty,
            lr=0.05,
            momentum=0.8,
            reset_optimizer=True,
            batch_size=10,
            max_epochs=2,
            callbacks=callbacks,
            random_state=0,
        )
        fitted[name] = clf.fit(X, y, task_id=t)
    return fitted, (X_test, y_test, t_test)


def save(figure, path, dpi):
    figure.savefig(path, dpi=dpi)  # plain savefig: what fits the figure is kept
    plt.close(figure)
    # 256 colours keep the docs' pictures small (PIL comes with matplotlib).
    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True
    )
    print(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs/images")
    parser.add_argument("--n-tasks", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(1)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for n in args.n_tasks:
        fitted, test = fit_all(n)
        display = AccuracyMatrixDisplay.from_estimator(fitted["ewc"], *test)
        display.ax_.set_title(f"EWC, {n} permuted-digits tasks")
        save(display.figure_, output / f"display_accuracy_matrix_{n}.png", args.dpi)

        display = TaskAccuracyDisplay.from_estimator(fitted, *test)
        display.figure_.suptitle(f"{n} permuted-digits tasks")
        save(display.figure_, output / f"display_task_accuracy_{n}.png", args.dpi)

        # The user's own axes, without constrained layout.
        figure, axes = plt.subplots(1, 2, figsize=(9, 4))
        TaskAccuracyDisplay.from_estimator(
            {"naive": fitted["naive"], "ewc": fitted["ewc"]}, *test, ax=axes
        )
        save(figure, output / f"display_task_accuracy_user_axes_{n}.png", args.dpi)

        monitor = dict(fitted["naive"].net_.callbacks_)["TaskMonitor"]
        display = TaskAccuracyDisplay.from_monitor({"naive": monitor})
        save(display.figure_, output / f"display_monitor_{n}.png", args.dpi)


if __name__ == "__main__":
    main()
