"""Parallel speed-up of RegimeSearchCV, on a process pool and on a Dask cluster.

A search of 8 training regimes (learning rate, per-task decay, dropout: the
regimes of Stable SGD) x 3 task-aware folds = 24 fits on the permuted-digits
stream, each candidate trained alone (``vectorize=False``), run with
``n_jobs=1`` and ``n_jobs=2`` (joblib's process pool, loky),
then on a local Dask cluster of 2 single-threaded worker processes. Each
search is timed as a whole (candidate fits, scoring, refit). The first
``n_jobs=2`` search starts the worker processes (a cost paid once per
session); the speed-up is also given for a second, warm, run. The start-up of
the Dask cluster, with the import of skcl on its workers, is not timed. The
parallel searches must give exactly the scores of the sequential one. Run it
on a quiet machine (check ``uptime``):

    python benchmarks/bench_search.py
"""

import argparse
import importlib
import os
import platform
import time

import joblib
import numpy as np
import torch
from distributed import Client, LocalCluster

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.model_selection import RegimeSearchCV

GRID = {"lr": [0.01, 0.1], "lr_decay": [0.8, 1.0], "module__dropout": [0.0, 0.5]}


def run(search, X, y, task_id):
    start = time.perf_counter()
    search.fit(X, y, task_id=task_id)
    return time.perf_counter() - start, search.cv_results_


def same_scores(a, b):
    keys = [key for key in a if key.startswith(("split", "mean_test", "rank_test"))]
    return all(np.array_equal(a[key], b[key]) for key in keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-tasks", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--target", type=float, default=1.7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, _, y, _, task_id, _ = load_digits_stream(
        "permuted", n_tasks=args.n_tasks, random_state=0
    )
    clf = ContinualClassifier(
        module__hidden_sizes=(256, 256),
        batch_size=10,
        max_epochs=args.max_epochs,
        random_state=0,
    )

    def search(**params):
        # Each candidate alone: bench_vectorized_search.py measures the groups.
        return RegimeSearchCV(clf, GRID, cv=3, vectorize=False, **params)

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}, "
        f"joblib {joblib.__version__}"
    )
    print(
        f"{len(X)} samples, {args.n_tasks} tasks, 8 candidates x 3 folds = 24 fits, "
        f"MLP 64-256-256-10, batch 10, {args.max_epochs} epochs per task"
    )
    sequential, reference = run(search(n_jobs=1), X, y, task_id)
    cold, cold_results = run(search(n_jobs=2), X, y, task_id)
    warm, warm_results = run(search(n_jobs=2), X, y, task_id)
    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(importlib.import_module, "skcl.model_selection")
        startup = time.perf_counter() - start
        with joblib.parallel_backend("dask"):
            on_dask, dask_results = run(search(), X, y, task_id)
    identical = all(
        same_scores(reference, results)
        for results in (cold_results, warm_results, dask_results)
    )
    speedup = sequential / warm
    print(f"n_jobs=1                  {sequential:7.2f} s")
    print(
        f"n_jobs=2 (cold, loky)     {cold:7.2f} s   speed-up {sequential / cold:.2f}x"
    )
    print(f"n_jobs=2 (warm, loky)     {warm:7.2f} s   speed-up {speedup:.2f}x")
    print(
        f"Dask, 2 worker processes {on_dask:7.2f} s   speed-up "
        f"{sequential / on_dask:.2f}x (start-up {startup:.2f} s excluded)"
    )
    print(f"identical cv_results_ scores (loky, Dask vs n_jobs=1): {identical}")
    best = np.argmax(reference["mean_test_average_accuracy"])
    print(
        f"best regime {reference['params'][best]}: average accuracy "
        f"{reference['mean_test_average_accuracy'][best]:.3f}, forgetting "
        f"{-reference['mean_test_neg_forgetting'][best]:.3f}"
    )
    verdict = "ok" if speedup >= args.target and identical else "MISSED"
    print(f"target: speed-up >= {args.target}x with identical scores: {verdict}")


if __name__ == "__main__":
    main()
