"""
=========================================
Replay and distillation on digits streams
=========================================

A replay strategy keeps a small memory of the stream's samples and trains on
it alongside each new task (:mod:`skcl.replay`). This example compares, on
two digits streams, plain training with experience replay
(:class:`~skcl.replay.ER`), A-GEM (:class:`~skcl.replay.AGEM`), DER++
(:class:`~skcl.replay.DERPP`), learning without forgetting
(:class:`~skcl.penalties.LwF`, which keeps no memory) and a replay strategy
written in a dozen lines, ``ReplayLoss``:

- **class-incremental split digits**: five tasks of two digits each, one
  ten-output head, no task identity at test time;
- **permuted digits**: five tasks, each with its own fixed permutation of the
  64 pixels, the same ten classes in every task.

Every memory holds the same 200 samples, filled by reservoir sampling.
"""

# %%
# A replay strategy of your own
# -----------------------------
# :class:`~skcl.replay.Replay` builds the memory (``memory_``) from
# ``memory_size`` and ``memory`` when training starts and closes it at each
# task's end. ``ReplayLoss`` adds, at every step, ``lam`` times the training
# criterion on up to ``memory_batch_size`` samples of the earlier tasks, then
# offers the step's mini-batch to the memory.
import matplotlib.pyplot as plt
import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import accuracy_matrix, average_accuracy, forgetting
from skcl.penalties import LwF
from skcl.replay import AGEM, DERPP, ER, Replay


class ReplayLoss(Replay):
    def __init__(
        self, *, lam=1.0, memory_size=200, memory="reservoir", memory_batch_size=32
    ):
        self.lam = lam
        self.memory_size = memory_size
        self.memory = memory
        self.memory_batch_size = memory_batch_size

    def loss(self, net, step):
        # Up to memory_batch_size stored rows of the tasks that ended.
        rows = self.memory_.sample(
            self.memory_batch_size, earlier_tasks=True, generator=net.generator_
        )
        if rows is None:  # during the first task
            return None
        return self.lam * self.replay_loss(net, rows)

    def after_step(self, net, step):
        self.remember(net, step)  # offer the step's mini-batch to the memory


# %%
# The strategies
# --------------
# All share one training regime. A-GEM's own memory is class balanced (its
# ``memory_size`` is then per class and task); here it is a reservoir of 200
# samples like the others.
torch.set_num_threads(1)  # small networks train fastest on one thread
strategies = {
    "naive": {},
    "ER": {"replay": ER(memory_size=200)},
    "A-GEM": {"replay": AGEM(memory_size=200, memory="reservoir")},
    "DER++": {"replay": DERPP(memory_size=200, alpha=0.1, beta=0.5)},
    "LwF": {"penalty": LwF(lam=1.0)},
    "ReplayLoss": {"replay": ReplayLoss(memory_size=200)},
}

results = {}
for stream in ("split", "permuted"):
    X_train, X_test, y_train, y_test, task_train, task_test = load_digits_stream(
        stream, n_tasks=5, random_state=0
    )
    results[stream] = {}
    for name, plugins in strategies.items():
        clf = ContinualClassifier(
            lr=0.05,
            batch_size=10,
            max_epochs=3,
            momentum=0.8,
            module__hidden_sizes=(100, 100),
            random_state=0,
            **plugins,
        )
        clf.fit(X_train, y_train, task_id=task_train)
        R = accuracy_matrix(clf, X_test, y_test, task_id=task_test)
        results[stream][name] = R
        memory = getattr(clf.replay_, "memory_", None)
        print(
            f"{stream:>8}  {name:>10}  accuracy {average_accuracy(R):.3f}  "
            f"forgetting {forgetting(R):.3f}  memory "
            + ("-" if memory is None else f"{memory.nbytes:,} bytes")
        )

# %%
# Average accuracy and forgetting
# -------------------------------
# On the class-incremental stream plain training only knows the last task's
# two digits. A-GEM and LwF barely change that here: A-GEM only removes from
# each step what raises the memory's loss (to first order), and LwF keeps the
# old digits' outputs relative to one another, not against the new digits',
# which win nearly every prediction. The strategies that train on the stored
# samples themselves (ER, DER++, ``ReplayLoss``) keep the old digits' outputs
# competitive. On permuted digits, where every task has the same ten classes,
# all of them forget less than plain training.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
titles = {"split": "class-incremental split digits", "permuted": "permuted digits"}
width = 0.4
for ax, (stream, matrices) in zip(axes, results.items(), strict=True):
    names = list(matrices)
    ticks = np.arange(len(names))
    accuracy = [average_accuracy(R) for R in matrices.values()]
    forgot = [forgetting(R) for R in matrices.values()]
    ax.bar(ticks - width / 2, accuracy, width, label="average accuracy")
    ax.bar(ticks + width / 2, forgot, width, label="forgetting")
    ax.set(xticks=ticks, ylim=(0, 1.2), title=titles[stream])
    ax.set_xticklabels(names, rotation=30)
    ax.legend(loc="upper center", ncols=2, fontsize="small")
fig.tight_layout()
plt.show()
