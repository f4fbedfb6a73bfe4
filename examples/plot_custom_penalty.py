"""
================
A custom penalty
================

A penalty is a small scikit-learn-style object with a few hooks that the
estimator calls while it trains (the plug-in protocol of :class:`skcl.Plugin`;
see :class:`~skcl.penalties.Penalty`).
This example writes two in about twenty lines:

- ``L1Anchor``, a :class:`~skcl.penalties.Penalty` whose :meth:`loss` is
  ``lam * sum_j |theta_j - theta*_j|`` toward the parameters at the end of the
  previous task, backpropagated like any loss;
- ``MagnitudeAnchor``, a :class:`~skcl.penalties.QuadraticPenalty` that weighs
  the L2 pull of each parameter by its magnitude at the end of the previous
  task, ``lam/2 * sum_j |theta*_j| (theta_j - theta*_j)^2``: it only states its
  centre and weights, and the estimator applies it as it applies the
  built-in penalties, by the implicit step that no strength can make diverge.

Both are then tuned like any other: ``penalty__lam`` works in ``set_params``
and in a grid.
"""

# %%
# The penalties
# -------------
# The constructor only stores the hyper-parameters; the state, created in
# :meth:`initialize` and updated when a task ends (:meth:`end_task`, called
# when the next task opens, with the network at the ended task's final
# parameters), ends with an underscore. ``net`` is the inner skorch net:
# ``net.module_`` is the network, ``net.task_index_`` the 0-based index of the
# current task. ``loss`` also receives the training step (a :class:`skcl.Step`),
# which these penalties do not need.
import matplotlib.pyplot as plt
import torch

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import accuracy_matrix, average_accuracy, forgetting
from skcl.penalties import Penalty, QuadraticPenalty


def anchor(net):
    return [p.detach().clone() for p in net.module_.parameters() if p.requires_grad]


class L1Anchor(Penalty):
    def __init__(self, *, lam=1.0):
        self.lam = lam

    def initialize(self, net):
        self.anchor_ = None

    def end_task(self, net):
        self.anchor_ = anchor(net)

    def loss(self, net, step):
        if self.anchor_ is None:
            return None
        params = [p for p in net.module_.parameters() if p.requires_grad]
        return self.lam * sum(
            (p - a).abs().sum() for p, a in zip(params, self.anchor_, strict=True)
        )


class MagnitudeAnchor(QuadraticPenalty):
    def __init__(self, *, lam=1.0):
        self.lam = lam

    def initialize(self, net):
        self.anchor_ = None

    def end_task(self, net):
        self.anchor_ = anchor(net)

    def quadratic(self, net):  # (centres, weights, constant), or None for no term
        if self.anchor_ is None:
            return None
        return self.anchor_, [a.abs() for a in self.anchor_], 0.0


# %%
# Tuning their strength
# ---------------------
# Four permuted-digits tasks; ``lam=0`` is plain SGD.
torch.set_num_threads(1)  # small networks train fastest on one thread
X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
    "permuted", n_tasks=4, random_state=0
)
lams = [0.0, 1e-3, 1e-2, 1e-1]
quad_lams = [0.0, 0.1, 1.0, 10.0]
results = {}
for penalty, strengths in [(L1Anchor(), lams), (MagnitudeAnchor(), quad_lams)]:
    clf = ContinualClassifier(
        penalty=penalty,
        lr=0.05,
        batch_size=10,
        max_epochs=2,
        module__hidden_sizes=(100, 100),
        random_state=0,
    )
    name = type(penalty).__name__
    results[name] = []
    for lam in strengths:
        clf.set_params(penalty__lam=lam).fit(X_train, y_train, task_id=task_train)
        R = accuracy_matrix(clf, X_test, y_test, task_id=task_test)
        results[name].append((lam, average_accuracy(R), forgetting(R)))
        print(
            f"{name}(lam={lam:g}): accuracy {average_accuracy(R):.3f}, "
            f"forgetting {forgetting(R):.3f}"
        )

# %%
# Accuracy and forgetting against the strength
# --------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, (name, rows) in zip(axes, results.items(), strict=True):
    lam, accuracy, forgot = zip(*rows, strict=True)
    ticks = range(len(lam))
    ax.plot(ticks, accuracy, "o-", label="average accuracy")
    ax.plot(ticks, forgot, "s-", label="forgetting")
    ax.set(xticks=ticks, xticklabels=lam, xlabel="lam", title=name, ylim=(0, 1))
axes[0].legend()
fig.tight_layout()
plt.show()
