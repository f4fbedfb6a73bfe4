"""
===========================
A tabular regression stream
===========================

Continual learning is not only for images. Here the tasks are age groups of
scikit-learn's diabetes patients: :func:`~skcl.datasets.load_diabetes_stream`
cuts the data into the three age tertiles, youngest first, and a
:class:`~skcl.ContinualRegressor` learns them one after the other. Its
"accuracy matrix" holds R² scores (the estimator's ``score``), and the metrics
of :mod:`skcl.metrics` summarise it exactly as for a classifier. An L2 pull
toward the previous task's parameters is compared with plain SGD and with a
model trained on all the groups at once.
"""

# %%
# The stream
# ----------
# The age column defines the tasks and is removed from ``X``. Inputs and
# target are standardised with the statistics of the training stream (R² does
# not change when the target is rescaled).
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

from skcl import ContinualRegressor
from skcl.datasets import load_diabetes_stream
from skcl.metrics import (
    TaskAccuracyDisplay,
    accuracy_matrix,
    average_accuracy,
    forgetting,
)
from skcl.penalties import L2

torch.set_num_threads(1)  # small networks train fastest on one thread
X_train, X_test, y_train, y_test, task_train, task_test = load_diabetes_stream(
    "age", n_tasks=3, random_state=0
)
x_scaler = StandardScaler().fit(X_train)
y_scaler = StandardScaler().fit(y_train.reshape(-1, 1))
X_train, X_test = x_scaler.transform(X_train), x_scaler.transform(X_test)
y_train = y_scaler.transform(y_train.reshape(-1, 1)).ravel()
y_test = y_scaler.transform(y_test.reshape(-1, 1)).ravel()
print("patients per task (train):", np.bincount(task_train).tolist())

# %%
# Training
# --------
params = dict(
    lr=0.003, batch_size=8, max_epochs=20, module__hidden_sizes=(64,), random_state=0
)
models = {
    "plain SGD": ContinualRegressor(**params),
    "L2 (lam=1)": ContinualRegressor(penalty=L2(lam=1.0), **params),
}
matrices = {}
for name, reg in models.items():
    reg.fit(X_train, y_train, task_id=task_train)
    R = matrices[name] = accuracy_matrix(reg, X_test, y_test, task_id=task_test)
    print(f"{name}: average R² {average_accuracy(R):.3f}", end=", ")
    print(f"forgetting {forgetting(R):.3f}")
    print(np.array2string(R, precision=2))

# Without ``task_id`` the data are a single task: a joint model, trained on all
# the age groups at once, is the usual reference of continual learning.
joint = ContinualRegressor(**params).fit(X_train, y_train)
joint_r2 = [
    joint.score(X_test[task_test == t], y_test[task_test == t])
    for t in np.unique(task_test)
]
print(f"joint training: average R² {np.mean(joint_r2):.3f}")

# %%
# The R² of each age group along the stream
# -----------------------------------------
# Each line follows one task from the step that trains it; the dashed lines
# are the joint model's scores. Plain SGD loses the youngest patients as it
# learns the older ones; the L2 pull keeps them.
display = TaskAccuracyDisplay.from_matrix(matrices, task_labels=["young", "mid", "old"])
for ax in display.ax_:
    for score, line in zip(joint_r2, display.lines_[0], strict=True):
        ax.axhline(score, color=line.get_color(), linestyle="--", linewidth=1)
display.ax_[0].set_ylabel("R² on the held-out patients")
plt.show()
