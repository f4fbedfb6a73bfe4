"""EWC end to end on permuted MNIST: forgetting and time against a plain loop.

Five permuted-MNIST tasks of 10,000 training images (the first 10,000 of the
training set, a fixed pixel permutation per task, task 0 unpermuted), tested
on the 10,000 test images under the same permutations. MLP 784-256-256-10,
SGD lr 0.01 without momentum, batch size 10, one epoch per task, one torch
thread. Rows: a hand-written PyTorch loop without penalty, skcl without
penalty, and skcl with ``EWC(lam=100)`` and the exact empirical Fisher over
each task's training data (its time includes the Fisher). Training time only:
the evaluation after each task is not timed. The three runs alternate
``--repeats`` times and the times are medians (forgetting is deterministic).

    python benchmarks/bench_ewc.py --data-home ../shared/data/mnist
"""

import argparse
import platform
import time
from functools import partial

import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.datasets import fetch_mnist, make_permuted_stream
from skcl.metrics import accuracy_matrix, forgetting
from skcl.penalties import EWC

N_TASKS, N_TRAIN, LR, BATCH = 5, 10_000, 0.01, 10


def make_stream(data_home):
    mnist = fetch_mnist(data_home, download_if_missing=False, cache=False)
    X, y = mnist.X_train[:N_TRAIN], mnist.y_train[:N_TRAIN]
    X_train, y_train, t_train, perms = make_permuted_stream(
        X, y, N_TASKS, return_permutations=True, random_state=0
    )
    X_test = np.concatenate([mnist.X_test[:, p] for p in perms])
    y_test = np.tile(mnist.y_test, N_TASKS)
    t_test = np.repeat(np.arange(N_TASKS), len(mnist.y_test))
    return X_train, y_train, t_train, X_test, y_test, t_test


def hand_loop(X, y, t, X_test, y_test, t_test):
    """A plain PyTorch loop: returns (training seconds, forgetting)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    X_test, y_test = torch.as_tensor(X_test), torch.as_tensor(y_test)
    R = np.zeros((N_TASKS, N_TASKS))
    seconds = 0.0
    for task in range(N_TASKS):
        start = time.perf_counter()
        rows = torch.as_tensor(t == task).nonzero().ravel()
        rows = rows[torch.randperm(len(rows))]
        for i in range(0, len(rows), BATCH):
            index = rows[i : i + BATCH]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
        with torch.no_grad():
            predicted = model(X_test).argmax(1)
        for i in range(N_TASKS):
            rows_i = torch.as_tensor(t_test == i)
            R[task, i] = (predicted[rows_i] == y_test[rows_i]).double().mean().item()
    return seconds, forgetting(R)


def skcl_run(penalty, X, y, t, X_test, y_test, t_test, *, evaluate=True):
    clf = ContinualClassifier(
        module__hidden_sizes=(256, 256),
        penalty=penalty,
        lr=LR,
        momentum=0.0,
        batch_size=BATCH,
        max_epochs=1,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X, y, task_id=t)
    seconds = time.perf_counter() - start
    if not evaluate:
        return seconds, None
    return seconds, forgetting(accuracy_matrix(clf, X_test, y_test, t_test))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default="../shared/data/mnist")
    parser.add_argument("--lam", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, torch {torch.__version__}, 1 thread")
    stream = make_stream(args.data_home)
    names = [
        "hand-written loop, no penalty",
        "skcl, no penalty",
        f"skcl, EWC(lam={args.lam:g})",
    ]
    times = {name: [] for name in names}
    forgot = {}
    for repeat in range(args.repeats):
        first = repeat == 0
        runs = [
            partial(hand_loop, *stream),
            partial(skcl_run, None, *stream, evaluate=first),
            partial(skcl_run, EWC(lam=args.lam), *stream, evaluate=first),
        ]
        for name, run in zip(names, runs, strict=True):
            seconds, forgetting_ = run()
            times[name].append(seconds)
            forgot.setdefault(name, forgetting_)
    hand_seconds = float(np.median(times[names[0]]))
    rows = [(name, float(np.median(times[name])), forgot[name]) for name in names]
    print(f"{'run':<32} {'train s':>8} {'x hand':>7} {'forgetting':>11}")
    for name, seconds, forgot in rows:
        print(f"{name:<32} {seconds:8.2f} {seconds / hand_seconds:7.2f} {forgot:11.3f}")
    ratio, forgot = rows[-1][1] / hand_seconds, rows[-1][2]
    print(
        f"targets: EWC forgetting <= 0.06 ({'ok' if forgot <= 0.06 else 'MISSED'}), "
        f"EWC time <= 1.5x the plain loop ({'ok' if ratio <= 1.5 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
