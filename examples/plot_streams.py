"""
=========================
Building streams of tasks
=========================

The stream builders of :mod:`skcl.datasets` turn one data set into a sequence
of tasks and return plain arrays ``(X, y, task_id)``, task 0's rows first.
This example builds a permuted, a rotated and a split stream from
scikit-learn's 8x8 digits and shows the first digit of each task.
"""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skcl.datasets import (
    load_digits_stream,
    make_permuted_stream,
    make_rotated_stream,
    make_split_stream,
)

digits = load_digits()
X, y = digits.data / 16, digits.target

streams = {
    "permuted": make_permuted_stream(X, y, n_tasks=5, random_state=0),
    "rotated (10 degrees per task)": make_rotated_stream(X, y, n_tasks=5),
    "rotated (45 degrees per task)": make_rotated_stream(X, y, n_tasks=5, step=45),
    "split (2 digits per task)": make_split_stream(X, y, n_tasks=5),
}
for name, (X_stream, _, task_id) in streams.items():
    print(f"{name}: X {X_stream.shape}, tasks {np.bincount(task_id).tolist()}")

# %%
# Every task of the permuted and rotated streams holds all the digits, and the
# split stream holds each digit once. ``load_digits_stream`` builds the same
# streams with a train/test split shared by all tasks, ready for
# ``fit(X_train, y_train, task_id=task_train)``.

X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "rotated", n_tasks=5, random_state=0
)
print("train", X_train.shape, "test", X_test.shape)

# %%
# The first sample of each task:

fig, axes = plt.subplots(len(streams), 5, figsize=(7, 6))
for row, (name, (X_stream, y_stream, task_id)) in zip(
    axes, streams.items(), strict=True
):
    row[0].set_title(name, loc="left", fontsize=9)
    for t, ax in enumerate(row):
        first = np.flatnonzero(task_id == t)[0]
        ax.imshow(X_stream[first].reshape(8, 8), cmap="gray_r")
        ax.set_xlabel(f"task {t}, y={y_stream[first]}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
fig.tight_layout()
if matplotlib.get_backend().lower() != "agg":
    plt.show()
