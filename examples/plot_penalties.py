"""
=====================================
Penalties compared on permuted digits
=====================================

A network trained on one task after the other forgets the earlier ones. The
penalties of :mod:`skcl.penalties` add a term to the loss that anchors the
parameters to where earlier tasks left them: uniformly (:class:`~skcl.penalties.L2`),
or weighted by an estimate of each parameter's importance for the earlier
tasks (:class:`~skcl.penalties.EWC`, online EWC, :class:`~skcl.penalties.SI`,
:class:`~skcl.penalties.MAS`). This example trains the same network with each
of them on five permuted-digits tasks and compares their accuracy matrices.
"""

# %%
# The stream and the strategies
# -----------------------------
# Task ``t`` shuffles the 64 pixels of scikit-learn's 8x8 digits with a fixed
# permutation of its own (task 0 is unpermuted). All strategies share one
# training regime and differ only in the penalty.
import matplotlib.pyplot as plt
import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import (
    AccuracyMatrixDisplay,
    accuracy_matrix,
    average_accuracy,
    forgetting,
    learning_accuracy,
)
from skcl.penalties import EWC, L2, MAS, SI

torch.set_num_threads(1)  # small networks train fastest on one thread
X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "permuted", n_tasks=5, random_state=0
)
strategies = {
    "plain SGD": None,
    "L2": L2(lam=0.1),
    "EWC": EWC(lam=30.0),
    "online EWC": EWC(lam=30.0, mode="online", decay=0.9),
    "SI": SI(lam=1.0, xi=0.1),
    "MAS": MAS(lam=0.1),
}

# %%
# Training and scoring
# --------------------
# Each estimator keeps a snapshot of its parameters at the end of every task,
# from which :func:`~skcl.metrics.accuracy_matrix` scores every task after
# every task on the held-out digits.
matrices = {}
for name, penalty in strategies.items():
    clf = ContinualClassifier(
        penalty=penalty,
        lr=0.05,
        batch_size=10,
        max_epochs=3,
        momentum=0.8,
        reset_optimizer=True,
        module__hidden_sizes=(100, 100),
        random_state=0,
    )
    clf.fit(X_train, y_train, task_id=task_train)
    matrices[name] = accuracy_matrix(clf, X_test, y_test, task_id=task_test)

print(f"{'strategy':>12}  accuracy  forgetting  learning accuracy")
for name, R in matrices.items():
    print(
        f"{name:>12}  {average_accuracy(R):8.3f}  {forgetting(R):10.3f}"
        f"  {learning_accuracy(R):17.3f}"
    )

# %%
# The accuracy matrices
# ---------------------
# Row ``t`` holds the accuracy on every task after training task ``t``. Plain
# SGD learns each task (the diagonal) and loses it in the next rows; the
# penalties keep more of the lower triangle at the price of learning the later
# tasks a little less well.
fig, axes = plt.subplots(2, 3, figsize=(11, 7), sharex=True, sharey=True)
for ax, (name, R) in zip(axes.ravel(), matrices.items(), strict=True):
    AccuracyMatrixDisplay.from_matrix(
        R, ax=ax, colorbar=False, im_kw={"vmin": 0, "vmax": 1}
    )
    ax.set_title(f"{name}: {average_accuracy(R):.2f} / {forgetting(R):.2f}")
    ax.label_outer()
fig.suptitle("Accuracy matrices (title: average accuracy / forgetting)")
fig.tight_layout()
plt.show()

# %%
# The final accuracy on each task
# -------------------------------
# The last row of each matrix: the penalties keep the first tasks from
# collapsing, plain SGD only knows the last one.
fig, ax = plt.subplots(figsize=(7, 4))
width = 0.8 / len(matrices)
for k, (name, R) in enumerate(matrices.items()):
    ax.bar(np.arange(len(R)) + k * width, R[-1], width, label=name)
ax.set(
    xticks=np.arange(len(R)) + 0.4 - width / 2,
    xticklabels=[f"task {i}" for i in range(len(R))],
    ylabel="accuracy after the last task",
    ylim=(0, 1.15),
)
ax.legend(ncols=len(matrices), fontsize="small", loc="upper center")
fig.tight_layout()
plt.show()
