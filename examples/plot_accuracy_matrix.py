"""
=========================================
Accuracy matrix of a continual classifier
=========================================

A continual learner trains on tasks one after the other. Its accuracy matrix
``R[t, i]`` holds the accuracy on task ``i`` after training task ``t``: the
diagonal shows how well each task is learned, the part below it how much is
forgotten later. This example trains a network on four permuted-digits tasks,
plots its accuracy matrix and forgetting curves, summarizes them with the
metrics of :mod:`skcl.metrics`, and compares plain SGD with an L2 penalty
toward the previous task's parameters, in a grid search scored on forgetting.
"""

# %%
# A stream of permuted digits
# ---------------------------
# Each task shuffles the 64 pixels of the 8x8 digits with its own fixed
# permutation (task 0 is unpermuted). The estimator keeps a snapshot of its
# parameters at the end of every task, so the whole matrix is computed after
# training, from held-out data.
import matplotlib.pyplot as plt
import sklearn
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import (
    AccuracyMatrixDisplay,
    TaskAccuracyDisplay,
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    get_continual_scorer,
    initial_scores,
    learning_accuracy,
)
from skcl.penalties import L2

X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "permuted", n_tasks=4, random_state=0
)
naive = ContinualClassifier(lr=0.1, max_epochs=1, random_state=0)
naive.fit(X_train, y_train, task_id=task_train)

# %%
# The accuracy matrix and its summaries
# -------------------------------------
R = accuracy_matrix(naive, X_test, y_test, task_id=task_test)
b = initial_scores(naive, X_test, y_test, task_id=task_test)
print(f"average accuracy  {average_accuracy(R):.3f}")
print(f"learning accuracy {learning_accuracy(R):.3f}")
print(f"forgetting        {forgetting(R):.3f}")
print(f"backward transfer {backward_transfer(R):.3f}")
print(f"forward transfer  {forward_transfer(R, b):.3f}")

AccuracyMatrixDisplay.from_matrix(R, task_labels=naive.tasks_)
plt.show()

# %%
# Forgetting curves, with and without a penalty
# ---------------------------------------------
# Each line follows one task from the step that trains it. The L2 penalty
# pulls the network back toward the parameters of the previous task.
anchored = ContinualClassifier(
    penalty=L2(lam=0.1), lr=0.1, max_epochs=1, random_state=0
)
anchored.fit(X_train, y_train, task_id=task_train)
TaskAccuracyDisplay.from_estimator(
    {"plain SGD": naive, "L2 penalty": anchored}, X_test, y_test, task_test
)
plt.show()

# %%
# Searching the penalty strength on forgetting
# --------------------------------------------
# The continual scorers compute the accuracy matrix of each candidate on the
# held-out fold. They need the task ids of its samples, which scikit-learn
# routes to them when metadata routing is enabled. Each test fold holds
# samples of every task (stratified on the task ids).
sklearn.set_config(enable_metadata_routing=True)
cv = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X_train, task_train))
search = GridSearchCV(
    ContinualClassifier(lr=0.1, max_epochs=1, random_state=0).set_fit_request(
        task_id=True
    ),
    {"penalty": [None, L2(lam=0.1), L2(lam=1.0)]},
    scoring={
        "accuracy": get_continual_scorer("average_accuracy"),
        "forgetting": get_continual_scorer("neg_forgetting"),
    },
    refit="accuracy",
    cv=cv,
)
search.fit(X_train, y_train, task_id=task_train)
sklearn.set_config(enable_metadata_routing=False)
results = search.cv_results_
for params, acc, neg_forgetting in zip(
    results["params"],
    results["mean_test_accuracy"],
    results["mean_test_forgetting"],
    strict=True,
):
    name = str(params["penalty"])
    print(f"{name:>14}: accuracy {acc:.3f}, forgetting {-neg_forgetting:.3f}")
