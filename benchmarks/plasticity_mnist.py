"""The plasticity study's MNIST problems at their size: online accuracy per task.

Kumar, Marklund & Van Roy, "Maintaining Plasticity in Continual Learning via
Regenerative Regularization" (CoLLAs 2025): Permuted MNIST (500 tasks of
10,000 images drawn per task, one epoch of 625 steps of batch 16) and
Random-label MNIST (50 tasks of the same 1,200 images, labels shuffled per
task, 400 epochs = 30,000 steps of batch 16), an MLP 784-100-100-10 trained
with Adam, each strategy at the paper's best settings (its Tables 3-4; CReLU
with 91-unit layers, the parameter count of 100-unit ReLU layers). The online
accuracy of every batch is recorded by ``PrequentialScore``; the script
prints each strategy's mean online accuracy on the first and the last 10
tasks and its total online accuracy (means over seeds), and with ``--output``
writes the plasticity curves (``OnlineAccuracyDisplay``) and the curves'
values (``plasticity_<problem>.npz``).

    python benchmarks/plasticity_mnist.py --problem random-label --seeds 3
    python benchmarks/plasticity_mnist.py --problem permuted --seeds 3
    python benchmarks/plasticity_mnist.py --problem random-label --n-tasks 3 --epochs 2

``--speed`` instead times the comparison as ``skcl benchmark`` runs it (its
presets and streams; every strategy and seed, online accuracy recorded) on
the first 3 tasks, stacked by the engine (``fit_together``: one stack per
group of runs that share a network, each run on its own seed's stream)
against the same fits one by one:

    python benchmarks/plasticity_mnist.py --problem random-label --speed --epochs 10

The full runs take about 21 h (Random-label) and 4.4 h (Permuted) of CPU
for the 8 strategies x 3 seeds (docs/user_guide/plasticity.rst, "Cost"):
``--n-tasks`` and ``--epochs`` shorten them.
"""

import argparse
import copy
import os
import time
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.base import clone

from skcl import ContinualClassifier
from skcl._engine import fit_together
from skcl._engine._fit import stacking_key
from skcl.callbacks import PrequentialScore
from skcl.datasets import iter_permuted_mnist, make_random_label_mnist
from skcl.metrics import online_accuracy, prequential_scores, total_online_accuracy
from skcl.penalties import L2, L2Init, ShrinkAndPerturb
from skcl.plasticity import ContinualBackprop, ReDO

CREL = {"module__activation": "crelu", "module__hidden_sizes": (91, 91)}
CBP = {"penalty": ContinualBackprop(rho=1e-3, maturity=100, decay=0.99)}
# Per problem: tasks, images per task, epochs per task, and each strategy's
# Adam learning rate and parameters (the paper's Tables 3-4).
PROBLEMS = {
    "permuted": {
        "n_tasks": 500,
        "n_samples": 10000,
        "epochs": 1,
        "strategies": {
            "baseline": (1e-4, {}),
            "layer-norm": (1e-3, {"module__layer_norm": True}),
            "l2init": (1e-3, {"penalty": L2Init(lam=1e-2)}),
            "l2": (1e-3, {"penalty": L2(lam=1e-2)}),
            "shrink-perturb": (
                1e-3,
                {"penalty": ShrinkAndPerturb(shrink=1e-3, noise=1e-2)},
            ),
            "cbp": (1e-3, CBP),
            "crelu": (1e-3, CREL),
            "redo": (1e-3, {"penalty": ReDO(tau=0.0, period=625)}),
        },
    },
    "random-label": {
        "n_tasks": 50,
        "n_samples": 1200,
        "epochs": 400,
        "strategies": {
            "baseline": (1e-4, {}),
            "layer-norm": (1e-4, {"module__layer_norm": True}),
            "l2init": (1e-4, {"penalty": L2Init(lam=1e-2)}),
            "l2": (1e-4, {"penalty": L2(lam=1e-2)}),
            "shrink-perturb": (
                1e-4,
                {"penalty": ShrinkAndPerturb(shrink=1e-4, noise=1e-2)},
            ),
            "cbp": (1e-3, CBP),
            "crelu": (1e-3, CREL),
            "redo": (1e-3, {"penalty": ReDO(tau=0.1, period=30000)}),
        },
    },
}


def tasks(args, seed):
    """The problem's tasks ``(X, y, task)``, drawn from ``seed``."""
    if args.problem == "permuted":
        yield from iter_permuted_mnist(
            args.data_home,
            n_tasks=args.n_tasks,
            n_samples=args.n_samples,
            random_state=seed,
        )
        return
    X, y, task_id = make_random_label_mnist(
        args.data_home,
        n_tasks=args.n_tasks,
        n_samples=args.n_samples,
        random_state=seed,
    )
    for task in range(args.n_tasks):
        rows = task_id == task
        yield X[rows], y[rows], task


def make(name, args, seed):
    """The strategy's estimator, recording its online accuracy."""
    lr, params = PROBLEMS[args.problem]["strategies"][name]
    params = {"module__hidden_sizes": (100, 100), **copy.deepcopy(params)}
    return ContinualClassifier(
        optimizer=torch.optim.Adam,
        lr=lr,
        batch_size=16,
        max_epochs=args.epochs,
        keep_snapshots=False,
        callbacks=[PrequentialScore(warn=False)],
        random_state=seed,
        **params,
    )


def run(name, args, seed):
    torch.set_num_threads(1)
    clf = make(name, args, seed)
    start = time.process_time()
    for X, y, task in tasks(args, seed):
        clf.partial_fit(X, y, task_id=task, classes=np.arange(10))
    scores, training_task = prequential_scores(clf)
    return (
        name,
        online_accuracy(scores, training_task),
        total_online_accuracy(scores),
        time.process_time() - start,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=sorted(PROBLEMS), required=True)
    parser.add_argument("--n-tasks", type=int, default=None)
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--strategies", default="all", help="comma-separated, or all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument(
        "--data-home", default=os.environ.get("SKCL_DATA", "../shared/data/mnist")
    )
    parser.add_argument("--output", default=None, help="folder for the curves")
    parser.add_argument("--speed", action="store_true", help="time stacked fits")
    args = parser.parse_args(argv)
    problem = PROBLEMS[args.problem]
    for key in ("n_tasks", "n_samples", "epochs"):
        if getattr(args, key) is None:
            setattr(args, key, problem[key])
    strategies = problem["strategies"]
    names = list(strategies) if args.strategies == "all" else args.strategies.split(",")
    if args.speed:
        args.n_tasks = min(args.n_tasks, 3)
        return speed(names, args)
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run)(name, args, seed) for name in names for seed in range(args.seeds)
    )
    window = min(10, args.n_tasks)
    steps = args.epochs * -(-args.n_samples // 16)
    print(
        f"{args.problem} MNIST: {args.n_tasks} tasks of {args.n_samples} images, "
        f"{steps} steps of batch 16 each, {args.seeds} seeds"
    )
    print(f"{'strategy':<16} {'first':>6} {'last':>6} {'total':>6} {'CPU s':>8}")
    curves = {}
    for name in names:
        mine = [r for r in results if r[0] == name]
        curves[name] = np.mean([r[1] for r in mine], axis=0)
        total = np.mean([r[2] for r in mine])
        seconds = np.mean([r[3] for r in mine])
        first, last = curves[name][:window].mean(), curves[name][-window:].mean()
        print(f"{name:<16} {first:6.3f} {last:6.3f} {total:6.3f} {seconds:8.1f}")
    print(f"(online accuracy on the first and the last {window} tasks, and in all)")
    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        from skcl.metrics import OnlineAccuracyDisplay

        folder = Path(args.output)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / f"plasticity_{args.problem}.npz", **curves)
        display = OnlineAccuracyDisplay(curves, chance=0.1).plot()
        display.figure_.savefig(
            folder / f"plasticity_{args.problem}.png", dpi=100, bbox_inches="tight"
        )


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
    from skcl._benchmark._plasticity_presets import plasticity_params
    from skcl._benchmark._plasticity_streams import PlasticityStream

    torch.set_num_threads(1)
    stream = {"random-label": "random-label-mnist"}.get(
        args.problem, "plasticity-permuted-mnist"
    )
    streams = {}
    for seed in range(args.seeds):
        tasks = PlasticityStream(
            stream, args.n_tasks, args.data_home, args.n_samples, seed
        )
        X, y = zip(*map(tasks.task, range(args.n_tasks)), strict=True)
        task = np.repeat(np.arange(args.n_tasks), [len(rows) for rows in y])
        streams[seed] = (np.concatenate(X), np.concatenate(y), task)
    regime = f"plasticity-{args.problem}"
    names = ["naive" if name == "baseline" else name for name in names]

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
