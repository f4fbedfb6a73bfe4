"""
=====================================================
Seeing a network lose its ability to learn, and CReLU
=====================================================

Every task of :func:`~skcl.datasets.make_random_label_stream` shows the same
80 digits with freshly shuffled labels: each must be memorised anew, so a
network that keeps its plasticity does as well on the last task as on the
first. :class:`~skcl.callbacks.PrequentialScore` records the accuracy of every
training batch before the network learns from it (the online accuracy of
Kumar et al., 2025) and :class:`~skcl.callbacks.PlasticityMonitor` records, at
the end of each task, why the network may stop learning: dead units, the
effective rank (srank) of its features, its weights' magnitude, its gradient.

With Adam at a large step size (it speeds up what takes thousands of tasks at
the paper's settings), plain training kills most of its ReLU units within ten
tasks and its online accuracy falls toward chance; a pull toward the initial
weights (:class:`~skcl.penalties.L2Init`) keeps the units alive, and
Concatenated ReLU (``module__activation="crelu"``), which has no unit that
can die, learns each task better than the first. See the user guide's
"Losing the ability to learn" for the other remedies.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

from skcl import ContinualClassifier
from skcl.callbacks import PlasticityMonitor, PrequentialScore
from skcl.datasets import make_random_label_stream
from skcl.metrics import (
    OnlineAccuracyDisplay,
    online_accuracy,
    prequential_scores,
    total_online_accuracy,
)
from skcl.penalties import L2Init

torch.set_num_threads(1)

digits = load_digits()
X = (digits.data[:80] / 16).astype(np.float32)
X, y, task_id = make_random_label_stream(X, digits.target[:80], 10, random_state=0)

strategies = {
    "baseline": {},
    "L2 Init": {"penalty": L2Init(lam=1e-2)},
    "CReLU": {"module__activation": "crelu"},
}
fitted = {}
print(f"{'':10} {'first 2':>8} {'last 2':>7} {'total':>6} {'dead':>5} {'srank':>6}")
for name, params in strategies.items():
    clf = ContinualClassifier(
        module__hidden_sizes=(64, 64),
        optimizer=torch.optim.Adam,
        lr=1e-2,
        batch_size=16,
        max_epochs=20,
        keep_snapshots=False,
        callbacks=[PrequentialScore(), PlasticityMonitor()],
        random_state=0,
        **params,
    )
    fitted[name] = clf.fit(X, y, task_id=task_id)
    scores, tasks = prequential_scores(clf)
    curve = online_accuracy(scores, tasks)
    monitor = dict(clf.net_.callbacks_)["PlasticityMonitor"]
    print(
        f"{name:10} {curve[:2].mean():8.2f} {curve[-2:].mean():7.2f} "
        f"{total_online_accuracy(scores):6.2f} {monitor.dead_fraction_[-1]:5.2f} "
        f"{monitor.srank_[0]:>3}->{monitor.srank_[-1]}"
    )

OnlineAccuracyDisplay.from_estimator(fitted, diagnostic="dead_fraction", chance=0.1)
plt.show()
