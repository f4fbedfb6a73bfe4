"""
=================================================
Loss of plasticity on random labels, and L2 Init
=================================================

:func:`~skcl.datasets.make_random_label_stream` shows the same images in every
task with freshly shuffled labels, so each task must be memorised from
scratch: the plasticity benchmark of Kumar et al. (2023). After each task we
measure how much of it the network memorised. Over a long stream plain
training loses that ability while :class:`~skcl.penalties.L2Init`, a pull
toward the initial parameters, keeps it; this 15-task version only starts to
show the trend. ``benchmarks/plasticity.py`` runs the 40-task version of the
benchmarks page, where plain training falls from 48% to 23% and L2 Init holds.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

from skcl import ContinualClassifier
from skcl.datasets import make_random_label_stream
from skcl.penalties import L2Init

torch.set_num_threads(1)

digits = load_digits()
X = (digits.data[:200] / 16).astype(np.float32)
X, y, task = make_random_label_stream(X, digits.target[:200], 15, random_state=0)

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, penalty in [("naive", None), ("L2 Init", L2Init(lam=1e-2))]:
    clf = ContinualClassifier(
        penalty=penalty,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=16,
        max_epochs=25,
        keep_snapshots=False,
        random_state=0,
    )
    memorised = []
    for k in range(15):
        rows = task == k
        clf.partial_fit(X[rows], y[rows], task_id=k, classes=np.arange(10))
        memorised.append(clf.score(X[rows], y[rows]))
    first, last = np.mean(memorised[:3]), np.mean(memorised[-3:])
    print(f"{name}: first 3 tasks {first:.2f}, last 3 {last:.2f}")
    ax.plot(memorised, label=name)
ax.set(xlabel="Task", ylabel="Accuracy on the task after training it")
ax.legend()
plt.show()
