"""
======================================================
Task-incremental Split MNIST with a multi-head network
======================================================

Split MNIST cuts the ten digits into five tasks of two digits each, learned one
after the other. How hard it is depends on what the model is told at test time
(van de Ven and Tolias, "Three scenarios for continual learning", 2019):

- **task-incremental**: the task of each test image is known, so the model
  only chooses between the two digits of that task. A multi-head network
  (``multi_head=True``) trains and predicts each task on its own outputs;
- **domain-incremental**: the task is unknown, but each task is a binary
  problem with the same two labels (first or second digit of the pair), so
  one shared two-output head serves every task (``relabel=True``);
- **class-incremental**: the task is unknown and the model must tell all ten
  digits apart, with one ten-output head.

The same network learns the stream in the three scenarios. When the MNIST
files are at hand (``$SKCL_DATA``, or ``../shared/data`` beside the
checkout) it uses a subset of MNIST; otherwise it falls back on
scikit-learn's embedded 8x8 digits, so that the example runs anywhere.
"""

# %%
# The stream
# ----------
# :func:`~skcl.datasets.fetch_mnist` reads the four IDX files without
# downloading (``download_if_missing=False``) and without writing a cache;
# the example keeps the first 6,000 training and 2,000 test images.
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.datasets import fetch_mnist, load_digits_stream, load_idx, make_split_stream
from skcl.metrics import AccuracyMatrixDisplay, accuracy_matrix, average_accuracy

torch.set_num_threads(1)  # small networks train fastest on one thread


def load_mnist_subset():
    """Return a subset of MNIST, or None when the files are not found."""
    # From the repository root or from examples/ (where the gallery runs).
    for folder in (os.environ.get("SKCL_DATA"), "../shared/data", "../../shared/data"):
        if not folder:
            continue
        try:
            X_train, X_test, y_train, y_test = fetch_mnist(
                folder, download_if_missing=False, cache=False, return_X_y=True
            )
        except FileNotFoundError:
            continue
        # Any IDX file reads with load_idx, e.g. the test labels:
        labels = Path(folder, "mnist", "t10k-labels-idx1-ubyte.gz")
        if labels.exists():
            counts = np.bincount(load_idx(labels))
            print("MNIST test images per digit, read with load_idx:", counts)
        return X_train[:6000], X_test[:2000], y_train[:6000], y_test[:2000]
    return None


def split_stream(relabel):
    if mnist is None:
        return load_digits_stream("split", n_tasks=5, random_state=0, relabel=relabel)
    X_train, X_test, y_train, y_test = mnist
    train = make_split_stream(X_train, y_train, n_tasks=5, relabel=relabel)
    test = make_split_stream(X_test, y_test, n_tasks=5, relabel=relabel)
    return train[0], test[0], train[1], test[1], train[2], test[2]


mnist = load_mnist_subset()
data = "MNIST (subset)" if mnist is not None else "8x8 digits (MNIST not found)"
print("data:", data)

# %%
# Three scenarios, one network
# ----------------------------
# ``accuracy_matrix`` gives a multi-head model the task of each test sample
# (``predict(X, task_id=...)``); the single-head models ignore it.
scenarios = {
    "task-incremental\n(multi-head, task known)": dict(multi_head=True),
    "domain-incremental\n(shared 2-way head)": dict(relabel=True),
    "class-incremental\n(10-way head)": dict(),
}
matrices = {}
for name, options in scenarios.items():
    X_train, X_test, y_train, y_test, task_train, task_test = split_stream(
        options.get("relabel", False)
    )
    clf = ContinualClassifier(
        multi_head=options.get("multi_head", False),
        lr=0.05,
        batch_size=32,
        max_epochs=2,
        module__hidden_sizes=(256,),
        random_state=0,
    )
    clf.fit(X_train, y_train, task_id=task_train)
    matrices[name] = accuracy_matrix(clf, X_test, y_test, task_id=task_test)
    print(
        f"{name.splitlines()[0]}: average accuracy "
        f"{average_accuracy(matrices[name]):.3f}"
    )

# %%
# The accuracy matrices
# ---------------------
# With its task given, the multi-head network hardly forgets; with one shared
# head it confuses the pairs; asked to tell all ten digits apart it only
# knows the last two.
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
for ax, (name, R) in zip(axes, matrices.items(), strict=True):
    AccuracyMatrixDisplay.from_matrix(
        R, ax=ax, colorbar=False, im_kw={"vmin": 0, "vmax": 1}
    )
    ax.set_title(name, fontsize=10)
fig.suptitle(f"Split {data}: accuracy on each task after each task")
fig.tight_layout()
plt.show()
