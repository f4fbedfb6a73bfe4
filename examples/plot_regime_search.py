"""
=====================================================
Searching the training regime that forgets the least
=====================================================

How a network is trained (its learning rate and how it decays from task to
task, dropout, the number of epochs) changes how much it forgets as much as
the choice of a penalty does (Mirzadeh et al., "Understanding the role of
training regimes in continual learning", NeurIPS 2020). This example searches
such regimes with :class:`~skcl.model_selection.RegimeSearchCV` on a stream of
permuted digits: every candidate trains on the whole stream of every training
fold and is scored with the continual metrics on the held-out part of every
task, in parallel on two processes.
"""

# %%
# The stream and the candidates
# -----------------------------
# Four tasks, each a fixed permutation of the 64 pixels, three epochs each with
# plain SGD. The grid holds the two regimes of the paper, a high learning rate
# decaying by 0.8 per task (with and without dropout) against a small constant
# one, and the small constant one with an L2 penalty toward the previous
# task's parameters.
import matplotlib.pyplot as plt
import torch

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import AccuracyMatrixDisplay, accuracy_matrix
from skcl.model_selection import RegimeSearchCV, TaskKFold
from skcl.penalties import L2

torch.set_num_threads(1)  # small networks train fastest on one thread
X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "permuted", n_tasks=4, random_state=0
)
clf = ContinualClassifier(
    batch_size=10,
    max_epochs=3,
    momentum=0.0,
    module__hidden_sizes=(100, 100),
    random_state=0,
)
param_grid = [
    {"lr": [0.1], "lr_decay": [0.8], "module__dropout": [0.0, 0.5]},
    {"lr": [0.01], "lr_decay": [1.0], "module__dropout": [0.0]},
    {"lr": [0.01], "penalty": [L2(lam=0.01), L2(lam=1.0)]},
]

# %%
# The search
# ----------
# By default every candidate is scored on average accuracy, forgetting,
# backward transfer and learning accuracy; the best on average accuracy is
# refitted on the whole training stream. ``TaskKFold`` holds out a third of
# every task in each fold. Each of the two worker processes trains with one
# torch thread.
search = RegimeSearchCV(clf, param_grid, cv=TaskKFold(3), n_jobs=2)
search.fit(X_train, y_train, task_id=task_train)

results = search.cv_results_
for params, acc, neg_forgetting in zip(
    results["params"],
    results["mean_test_average_accuracy"],
    results["mean_test_neg_forgetting"],
    strict=True,
):
    print(f"accuracy {acc:.3f}  forgetting {-neg_forgetting:.3f}  {params}")
print("best:", search.best_params_)
print(
    f"held-out average accuracy: {search.score(X_test, y_test, task_id=task_test):.3f}"
)

# %%
# Accuracy against forgetting
# ---------------------------
# Each point is a regime, with its spread over the folds.
fig, ax = plt.subplots()
for i, params in enumerate(results["params"]):
    ax.errorbar(
        -results["mean_test_neg_forgetting"][i],
        results["mean_test_average_accuracy"][i],
        xerr=results["std_test_neg_forgetting"][i],
        yerr=results["std_test_average_accuracy"][i],
        fmt="o",
        label=", ".join(f"{k.split('__')[-1]}={v}" for k, v in params.items()),
    )
ax.legend(fontsize="small")
ax.set(xlabel="forgetting", ylabel="average accuracy", title="Training regimes")
plt.show()

# %%
# The best regime on the test stream
# ----------------------------------
R = accuracy_matrix(search.best_estimator_, X_test, y_test, task_id=task_test)
AccuracyMatrixDisplay.from_matrix(R, task_labels=search.best_estimator_.tasks_)
plt.show()
