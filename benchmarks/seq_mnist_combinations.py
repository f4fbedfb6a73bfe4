"""DER++ combinations on the DER paper's Seq-MNIST, class-IL, memory 200.

Each combination starts from the ``der++`` preset of ``skcl benchmark --stream
seq-mnist --memory-size 200`` (MLP 784-100-100-10 with Xavier-uniform
weights, plain SGD at lr 0.03, batch 10, one epoch per task;
``DERPP(memory_size=200, memory_batch_size=128, alpha=0.2, beta=1.0)``) and
changes what its name says. It trains as ``skcl benchmark`` does, through the
public API: one ``partial_fit`` per task (digits 0-1, 2-3, ...), seed ``s``
as ``random_state``; the class-IL accuracy is the mean over the tasks of the
accuracy after the last task, the task-IL accuracy the same with each
sample's prediction restricted to its task's two classes.

    python benchmarks/seq_mnist_combinations.py --data-home ../shared/data \\
        --combinations lr-decay+memory-batch-256 --seeds 3
"""

import argparse
import time

import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.datasets import fetch_mnist
from skcl.penalties import LwF
from skcl.replay import DERPP

PRESET = dict(
    module__hidden_sizes=(100, 100),
    module__init="xavier_uniform",
    momentum=0.0,
    max_epochs=1,
    batch_size=10,
    lr=0.03,
)
REPLAY = dict(memory_size=200, memory_batch_size=128, alpha=0.2, beta=1.0)
# lr 0.05 decayed by 0.6 a task: the best of --lr / --lr-decay tried through
# skcl benchmark (docs/benchmarks.md); the others add to it.
DECAY = dict(lr=0.05, lr_decay=0.6)
COMBINATIONS = {
    "preset": ({}, {}),
    "lr-decay": (DECAY, {}),
    "lr-decay+memory-batch-256": (DECAY, dict(memory_batch_size=256)),
    "lr-decay+lwf": (dict(DECAY, penalty=LwF(lam=1.0)), {}),
}


def run(data, name, seed):
    X, y, X_test, y_test = data
    params, replay = COMBINATIONS[name]
    clf = ContinualClassifier(
        **{**PRESET, **params},
        replay=DERPP(**{**REPLAY, **replay}),
        classes=np.arange(10),
        random_state=seed,
    )
    start = time.perf_counter()
    for k in range(5):
        rows = y // 2 == k
        clf.partial_fit(X[rows], y[rows], task_id=k)
    seconds = time.perf_counter() - start
    class_il, task_il = [], []
    for k in range(5):
        rows = y_test // 2 == k
        proba = clf.predict_proba(X_test[rows])
        class_il.append(np.mean(proba.argmax(1) == y_test[rows]))
        own = 2 * k + proba[:, 2 * k : 2 * k + 2].argmax(1)
        task_il.append(np.mean(own == y_test[rows]))
    return 100 * np.mean(class_il), 100 * np.mean(task_il), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--combinations",
        default=",".join(COMBINATIONS),
        help=f"comma-separated, from: {', '.join(COMBINATIONS)}",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, X_test, y, y_test = fetch_mnist(
        args.data_home, download_if_missing=False, return_X_y=True
    )
    for name in args.combinations.split(","):
        if name not in COMBINATIONS:
            parser.error(f"--combinations takes {list(COMBINATIONS)}, not {name!r}")
        scores = [run((X, y, X_test, y_test), name, s) for s in range(args.seeds)]
        cil, til, seconds = np.array(scores).T
        print(
            f"{name:17s} class-IL {cil.mean():5.2f} +- {cil.std():4.2f}  "
            f"task-IL {til.mean():5.2f} +- {til.std():4.2f}  "
            f"({', '.join(f'{c:.2f}' for c in cil)}; {seconds.mean():.0f} s per seed)",
            flush=True,
        )


if __name__ == "__main__":
    main()
