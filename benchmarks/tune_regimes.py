"""Choose regimes and penalty strengths for the benchmark presets.

Each candidate is an override of the presets (``skcl/_benchmark/_presets.py``):
the penalty strength ``lam`` for the penalties; the learning rate, its
per-task decay and the dropout for Stable SGD. Each is trained with one seed,
and for each strategy the candidate with the best average accuracy wins.

Two protocols:

- A-GEM's (Chaudhry et al., 2019, the default): train on the first
  ``--n-tasks 3`` tasks and score on their test images.
- The whole horizon on held-out training images: ``--n-tasks 20 --holdout
  10000`` trains on the first 50,000 training images of each task and scores
  on the last 10,000, so the test images are never looked at; ``--seed``
  other than the reported seeds draws other tasks.

    python benchmarks/tune_regimes.py --stream permuted-mnist --strategies ewc
    python benchmarks/tune_regimes.py --stream rotated-mnist --strategies stable-sgd \
        --n-tasks 20 --holdout 10000 --seed 100

``--batch-size`` trains every candidate at another batch size than the
preset's (the batch size is part of Stable SGD's regime); ``--lams`` replaces
the penalties' grid of strengths, e.g. ``--lams 1,10,100,1e3,1e4,1e5``.
"""

import argparse
import itertools
import json

import numpy as np
from joblib import Parallel, delayed

from skcl._benchmark import regime_of, run_in_worker, strategy_params


def _lams(*values):
    return [{"lam": v} for v in values]


GRIDS = {
    "l2": _lams(0.01, 0.1, 1.0),
    "l2init": _lams(1e-4, 1e-3, 1e-2),
    "ewc": _lams(1.0, 10.0, 100.0, 1000.0),
    "online-ewc": _lams(1.0, 10.0, 100.0, 1000.0),
    "si": _lams(0.1, 1.0, 10.0),
    "mas": _lams(0.1, 1.0, 10.0),
    "stable-sgd+ewc": _lams(1.0, 10.0, 100.0),
    "ewc+er": _lams(0.1, 1.0, 10.0),
    # Choosing the per-task decay needs the whole horizon: three tasks always
    # favour a fast decay.
    "stable-sgd": [
        {"lr": lr, "lr_decay": decay, "dropout": dropout}
        for lr, decay, dropout in itertools.product(
            (0.02, 0.05, 0.1), (0.5, 0.65, 0.8), (0.25, 0.5)
        )
    ],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="permuted-mnist")
    parser.add_argument("--n-tasks", type=int, default=3)
    parser.add_argument(
        "--holdout", type=int, help="score on this many held-out training images"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-size", type=int, help="train every candidate at this batch size"
    )
    parser.add_argument(
        "--lams", help="comma-separated strengths replacing the penalties' grids"
    )
    parser.add_argument("--data-home", default="../shared/data/mnist")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--strategies", default=",".join(GRIDS))
    parser.add_argument("--output", default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    stream_args = dict(
        name=args.stream,
        n_tasks=args.n_tasks,
        data_home=args.data_home,
        train_size=None,
        holdout=args.holdout,
    )
    regime = regime_of(args.stream)
    fixed = {} if args.batch_size is None else {"batch_size": args.batch_size}
    grids = dict(GRIDS)
    if args.lams:
        lams = _lams(*(float(v) for v in args.lams.split(",")))
        grids.update((s, lams) for s, grid in GRIDS.items() if "lam" in grid[0])
    runs = [
        (
            strategy,
            overrides,
            strategy_params(strategy, regime, overrides | fixed, n_tasks=args.n_tasks),
        )
        for strategy in args.strategies.split(",")
        for overrides in grids[strategy]
    ]
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run_in_worker)(stream_args, strategy, params, args.seed)
        for strategy, _, params in runs
    )
    scored_on = f"{args.holdout} held-out" if args.holdout else "test"
    print(
        f"{args.stream}, first {args.n_tasks} tasks, seed {args.seed}, "
        f"scored on {scored_on} images"
        + (f", batch size {args.batch_size}" if fixed else "")
    )
    print(f"{'strategy':<16} {'candidate':<50} {'accuracy':>9} {'forgetting':>11}")
    best = {}
    for (strategy, overrides, _), result in zip(runs, results, strict=True):
        accuracy = result["average_accuracy"]
        shown = "diverged" if result["diverged"] else f"{accuracy:9.3f}"
        forgetting = "" if result["diverged"] else f"{result['forgetting']:11.3f}"
        print(f"{strategy:<16} {overrides!s:<50} {shown:>9} {forgetting}")
        if not result["diverged"] and accuracy > best.get(strategy, (None, -np.inf))[1]:
            best[strategy] = (overrides, accuracy)
    print("best:", {s: overrides for s, (overrides, _) in best.items()})
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"runs": results, "best": best}, f, indent=2)


if __name__ == "__main__":
    main()
