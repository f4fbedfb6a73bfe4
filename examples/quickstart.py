"""
Quickstart: five permuted-digits tasks, with and without a penalty
==================================================================

Trains a small MLP on a stream of five tasks built from scikit-learn's embedded
digits (task ``t`` permutes the pixels with a fixed random permutation), once
with plain SGD and once with an L2 pull toward the previous task's parameters,
then prints the accuracy matrix and the continual metrics of each.
"""

import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import accuracy_matrix, average_accuracy, forgetting
from skcl.penalties import L2

torch.set_num_threads(1)  # small networks train fastest on one thread

X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "permuted", n_tasks=5, random_state=0
)

for name, penalty in [("naive SGD", None), ("L2 (lam=0.1)", L2(lam=0.1))]:
    clf = ContinualClassifier(
        penalty=penalty,
        lr=0.05,
        batch_size=10,
        max_epochs=3,
        module__hidden_sizes=(100, 100),
        random_state=0,
    )
    clf.fit(X_train, y_train, task_id=task_train)
    R = accuracy_matrix(clf, X_test, y_test, task_test)
    print(f"\n{name}: R[t, i] = accuracy on task i after training task t")
    print(np.array2string(R, precision=2))
    print(f"average accuracy {average_accuracy(R):.3f}, forgetting {forgetting(R):.3f}")
