"""
============================================================
Grid search over the penalty and learning rate in a pipeline
============================================================

The continual estimators are ordinary scikit-learn estimators: they go in a
:class:`~sklearn.pipeline.Pipeline` and are tuned with
:class:`~sklearn.model_selection.GridSearchCV`. The one thing a continual
learner needs on top is the task of every sample, ``task_id``. With
scikit-learn's metadata routing enabled, ``GridSearchCV.fit(X, y,
task_id=...)`` hands it to every step that asks for it: the estimator (which
asks by default) and the task-aware splitter
:class:`~skcl.model_selection.TaskKFold`, whose folds hold out part of every
task, so that every candidate trains on the whole stream.

This example searches the strength of :class:`~skcl.penalties.EWC` and the
learning rate of a standardising pipeline on four permuted-digits tasks.
"""

# %%
# The pipeline and the grid
# -------------------------
import matplotlib.pyplot as plt
import numpy as np
import sklearn
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import (
    AccuracyMatrixDisplay,
    accuracy_matrix,
    average_accuracy,
    forgetting,
)
from skcl.model_selection import TaskKFold
from skcl.penalties import EWC

torch.set_num_threads(1)  # small networks train fastest on one thread
sklearn.set_config(enable_metadata_routing=True)

X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "permuted", n_tasks=4, random_state=0
)
pipe = make_pipeline(
    StandardScaler(),
    ContinualClassifier(
        penalty=EWC(),
        batch_size=10,
        max_epochs=1,
        momentum=0.8,
        module__hidden_sizes=(100, 100),
        random_state=0,
    ),
)
lams = [0.0, 3.0, 30.0]
lrs = [0.003, 0.01, 0.03]
param_grid = {
    "continualclassifier__penalty__lam": lams,
    "continualclassifier__lr": lrs,
}

# %%
# The search
# ----------
# ``task_id`` goes to ``fit``; routing passes each fold's part of it to the
# estimator and the whole of it to the splitter. The candidates are ranked on
# the pipeline's ``score``, the accuracy over the held-out samples of all the
# tasks after the whole stream: with tasks of equal size, the average accuracy.
search = GridSearchCV(pipe, param_grid, cv=TaskKFold(3))
search.fit(X_train, y_train, task_id=task_train)
print("best:", search.best_params_, f"score {search.best_score_:.3f}")

scores = search.cv_results_["mean_test_score"].reshape(len(lrs), len(lams))
fig, ax = plt.subplots(figsize=(5, 4))
im = ax.imshow(scores, cmap="viridis")
for (i, j), score in np.ndenumerate(scores):
    color = "k" if im.norm(score) > 0.5 else "w"
    ax.text(j, i, f"{score:.2f}", ha="center", va="center", color=color)
ax.set(
    xticks=range(len(lams)),
    xticklabels=lams,
    yticks=range(len(lrs)),
    yticklabels=lrs,
    xlabel="EWC strength (lam)",
    ylabel="learning rate",
    title="Mean held-out accuracy, 3 task folds",
)
fig.colorbar(im, ax=ax)
fig.tight_layout()
plt.show()

# %%
# The best pipeline against no penalty
# ------------------------------------
# ``search.best_estimator_`` is the best pipeline refitted on the whole
# training stream; ``accuracy_matrix`` takes the pipeline as it is (the test
# stream goes through the scaler, the snapshots are the last step's). The
# same pipeline without the penalty (``lam=0``) shows what EWC buys.
best = search.best_estimator_
naive = sklearn.clone(best).set_params(continualclassifier__penalty__lam=0.0)
naive.fit(X_train, y_train, task_id=task_train)

best_lam = search.best_params_["continualclassifier__penalty__lam"]
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (name, model) in zip(
    axes, [("lam = 0", naive), (f"lam = {best_lam:g}", best)], strict=True
):
    R = accuracy_matrix(model, X_test, y_test, task_test)
    AccuracyMatrixDisplay.from_matrix(
        R, ax=ax, colorbar=False, im_kw={"vmin": 0, "vmax": 1}
    )
    ax.set_title(
        f"{name}: accuracy {average_accuracy(R):.2f}, forgetting {forgetting(R):.2f}"
    )
fig.tight_layout()
plt.show()

sklearn.set_config(enable_metadata_routing=False)
