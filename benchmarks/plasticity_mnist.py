"""The plasticity comparison on the L2 Init paper's MNIST problems, stacked.

Times every strategy and seed of ``skcl benchmark --stream random-label-mnist``
(or ``plasticity-permuted-mnist``) as the suite runs them (its presets: the
paper's best settings, and its streams; online accuracy recorded) on the
first 3 tasks, stacked by the engine (``fit_together``: one stack per group of
runs that share a network, each run on its own seed's stream) against the
same fits one by one:

    python benchmarks/plasticity_mnist.py --problem random-label --epochs 10

The comparison itself, its scores and curves, is ``skcl benchmark --stream
plasticity-permuted-mnist`` and ``--stream random-label-mnist``
(docs/benchmarks.md, "The L2 Init paper's study").
"""

import argparse
import os
import time

import numpy as np
import torch
from sklearn.base import clone

from skcl import ContinualClassifier
from skcl._benchmark._plasticity_presets import (
    PLASTICITY_REGIMES,
    PLASTICITY_STRATEGIES,
    plasticity_params,
)
from skcl._benchmark._plasticity_streams import PLASTICITY_STREAMS, PlasticityStream
from skcl._engine import fit_together
from skcl._engine._fit import stacking_key
from skcl.callbacks import PrequentialScore
from skcl.metrics import prequential_scores

STREAMS = {
    "permuted": "plasticity-permuted-mnist",
    "random-label": "random-label-mnist",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=sorted(STREAMS), required=True)
    parser.add_argument("--n-tasks", type=int, default=3, help="at most 3")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--strategies", default="all", help="comma-separated, or all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--data-home", default=os.environ.get("SKCL_DATA", "../shared/data/mnist")
    )
    args = parser.parse_args(argv)
    regime, _, n_samples = PLASTICITY_STREAMS[STREAMS[args.problem]]
    args.n_tasks = min(args.n_tasks, 3)
    if args.n_samples is None:
        args.n_samples = n_samples
    if args.epochs is None:
        args.epochs = PLASTICITY_REGIMES[regime]["max_epochs"]
    names = (
        list(PLASTICITY_STRATEGIES)
        if args.strategies == "all"
        else args.strategies.split(",")
    )
    return speed(names, args)


def speed(names, args):
    """Time every strategy and seed on the first tasks, stacked and one by one.

    The runs of ``skcl benchmark --stream random-label-mnist`` (or
    ``plasticity-permuted-mnist``): its presets (the paper's best settings,
    ``skcl._benchmark``) on its streams, each seed's own, shortened to
    ``--epochs`` per task, with online accuracy recorded. CPU time of the one
    thread: a fair measure on a machine shared with others. Also counts the
    runs whose online accuracies differ stacked and alone: float32 rounding,
    where the run alone trains on the module's own autograd and
    ``torch.optim`` (per-step plug-ins, Layer Norm, CReLU), grows over
    thousands of steps of memorising random labels.
    """
    torch.set_num_threads(1)
    stream = STREAMS[args.problem]
    streams = {}
    for seed in range(args.seeds):
        tasks = PlasticityStream(
            stream, args.n_tasks, args.data_home, args.n_samples, seed
        )
        X, y = zip(*map(tasks.task, range(args.n_tasks)), strict=True)
        task = np.repeat(np.arange(args.n_tasks), [len(rows) for rows in y])
        streams[seed] = (np.concatenate(X), np.concatenate(y), task)
    regime = PLASTICITY_STREAMS[stream][0]

    def preset(name, seed):
        params = plasticity_params(name, regime, {})
        return ContinualClassifier(
            **{**params, "max_epochs": args.epochs},
            callbacks=[PrequentialScore(warn=False)],
            random_state=seed,
        )

    groups = {}
    for name in names:
        for seed in range(args.seeds):
            est = preset(name, seed)
            groups.setdefault(repr(stacking_key(est)[0]), []).append((name, est, seed))
    X, y, task = streams[0]  # one-time work (imports, first calls) untimed
    fit_together([preset(names[0], 0) for _ in range(2)], X[:64], y[:64])
    stacked = alone = 0.0
    differing = 0
    for group in groups.values():
        data = [streams[seed] for _, _, seed in group]
        start = time.process_time()
        fitted, reason = fit_together(
            [clone(est) for _, est, _ in group], *zip(*data, strict=True), own_data=True
        )
        together = time.process_time() - start
        start = time.process_time()
        own = [
            clone(est).fit(X, y, task_id=task)
            for (_, est, _), (X, y, task) in zip(group, data, strict=True)
        ]
        one_by_one = time.process_time() - start
        alike = sum(
            np.array_equal(prequential_scores(a)[0], prequential_scores(b)[0])
            for a, b in zip(fitted, own, strict=True)
        )
        differing += len(group) - alike
        members = sorted({name for name, _, _ in group})
        print(
            f"  {len(group):2d} runs ({', '.join(members)}): stacked "
            f"{together:6.1f} s, one by one {one_by_one:6.1f} s (CPU); "
            f"{alike} with every online accuracy as alone"
            + ("" if reason is None else f" [not stacked: {reason}]")
        )
        stacked, alone = stacked + together, alone + one_by_one
    steps = args.n_tasks * args.epochs * -(-args.n_samples // 16)
    print(
        f"{stream}, {args.seeds * len(names)} runs ({len(names)} strategies x "
        f"{args.seeds} seeds) of {args.n_tasks} tasks, {steps} steps each, in "
        f"{len(groups)} stacks: stacked {stacked:.1f} s, one by one "
        f"{alone:.1f} s, ratio {stacked / alone:.2f}; runs whose online "
        f"accuracies differ stacked and alone: {differing}"
    )
    return stacked, alone


if __name__ == "__main__":
    main()
