"""Loss of plasticity on a long random-label stream, and how L2 Init holds it.

The plasticity benchmark of Kumar, Marklund & Van Roy ("Maintaining Plasticity
in Continual Learning via Regenerative Regularization", 2023), on the embedded
digits: every task shows the same ``--n-samples`` images with freshly shuffled
labels, so the only way to do well on a task is to memorise it from scratch.
After each task we record the accuracy on that task's own training data: a
network that keeps its plasticity memorises every new task as well as the
first; one that loses it memorises less and less. Strategies: plain training,
``L2Init`` and ``ShrinkAndPerturb`` (``--strategies`` picks others: the
paper's L2, ``ReDO``, ``ContinualBackprop``, Layer Norm and Concatenated ReLU),
all with Adam (the loss of plasticity is strongest with adaptive optimizers).
``l2`` is the paper's L2 as ``skcl benchmark``'s preset defines it, a pull
toward zero as Adam's ``weight_decay`` (``skcl.penalties.L2`` pulls toward the
previous task's parameters instead).

    python benchmarks/plasticity.py --n-tasks 60 --output docs/_static
    python benchmarks/plasticity.py --strategies all --n-tasks 40

``--speed`` instead times the comparison of every strategy over 3 seeds on
the first 3 tasks, stacked by the engine (``fit_together``, one stack per
group of candidates that share a network) against the same fits one by one.
"""

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.datasets import load_digits

from skcl import ContinualClassifier
from skcl._benchmark._plasticity_presets import plasticity_params
from skcl._engine import fit_together
from skcl._engine._fit import stacking_key
from skcl.datasets import make_random_label_stream
from skcl.penalties import L2Init, ShrinkAndPerturb
from skcl.plasticity import ContinualBackprop, ReDO

# Each strategy's parameters; the strengths of L2 Init and L2 and the shrink
# of Shrink & Perturb are the paper's best on Random-label MNIST (Kumar et
# al., 2025, Tables 3-4), its noise is 1e-4 (the paper's 1e-2).
STRATEGIES = {
    "naive": {},
    "l2init": {"penalty": L2Init(lam=1e-2)},
    "shrink-perturb": {"penalty": ShrinkAndPerturb(shrink=1e-4, noise=1e-4)},
    "l2": None,  # the suite's preset, in this script's regime
    "redo": {"penalty": ReDO(tau=0.1, period=1000)},
    "cbp": {"penalty": ContinualBackprop(rho=1e-3, maturity=100)},
    "layer-norm": {"module__layer_norm": True},
    "crelu": {"module__activation": "crelu"},
}
DEFAULT = ("naive", "l2init", "shrink-perturb")


def estimator(name, args, seed):
    if STRATEGIES[name] is None:
        regime = {
            "lr": args.lr,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "penalty_step": "implicit",  # skcl's default, as the others here
        }
        params = plasticity_params(name, "plasticity-random-label", regime)
        return ContinualClassifier(**params, random_state=seed)
    return ContinualClassifier(
        module__hidden_sizes=(100, 100),
        optimizer=torch.optim.Adam,
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        keep_snapshots=False,
        random_state=seed,
        **copy.deepcopy(STRATEGIES[name]),
    )


def run(name, X, y, task_id, args, seed):
    torch.set_num_threads(1)
    clf = estimator(name, args, seed)
    accuracy = []
    start = time.perf_counter()
    for k in range(args.n_tasks):
        rows = task_id == k
        clf.partial_fit(X[rows], y[rows], task_id=k, classes=np.arange(10))
        accuracy.append(clf.score(X[rows], y[rows]))
    return name, seed, np.array(accuracy), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-tasks", type=int, default=60)
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", default=None, help="folder for plasticity.png")
    parser.add_argument(
        "--strategies", default=",".join(DEFAULT), help="comma-separated, or all"
    )
    parser.add_argument("--speed", action="store_true", help="time stacked fits")
    args = parser.parse_args(argv)
    names = list(STRATEGIES) if args.strategies == "all" else args.strategies.split(",")
    digits = load_digits()
    X = (digits.data[: args.n_samples] / 16).astype(np.float32)
    X, y, task_id = make_random_label_stream(
        X, digits.target[: args.n_samples], args.n_tasks, random_state=0
    )
    if args.speed:
        return speed(names, X, y, task_id, args)
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run)(name, X, y, task_id, args, seed)
        for name in names
        for seed in range(args.seeds)
    )
    curves = {
        name: np.mean([acc for n, _, acc, _ in results if n == name], axis=0)
        for name in names
    }
    window = max(1, args.n_tasks // 10)
    print(
        f"random-label digits: {args.n_tasks} tasks of {args.n_samples} images, "
        f"{args.epochs} epochs each, Adam lr {args.lr}, {args.seeds} seeds"
    )
    print(f"{'strategy':<16} {'first tasks':>12} {'last tasks':>11} {'seconds':>8}")
    for name, curve in curves.items():
        seconds = np.mean([s for n, _, _, s in results if n == name])
        first, last = curve[:window].mean(), curve[-window:].mean()
        print(f"{name:<16} {first:12.3f} {last:11.3f} {seconds:8.1f}")
    print(f"(mean training accuracy on the first and the last {window} tasks)")
    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, curve in curves.items():
            ax.plot(np.arange(args.n_tasks), curve, label=name)
        ax.set(
            xlabel="Task",
            ylabel="Accuracy on the task after training it",
            title="Plasticity on random-label digits",
        )
        ax.legend()
        Path(args.output).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(args.output) / "plasticity.png", dpi=100, bbox_inches="tight")


def speed(names, X, y, task_id, args):
    """Time every strategy and seed on the first 3 tasks, stacked and one by one.

    CPU time of the one thread: a fair measure on a machine shared with others.
    """
    torch.set_num_threads(1)
    first = task_id < 3
    X, y, task_id = X[first], y[first], task_id[first]
    runs = [(name, seed) for name in names for seed in range(args.seeds)]
    groups = {}
    for name, seed in runs:
        est = estimator(name, args, seed)
        groups.setdefault(repr(stacking_key(est)[0]), []).append(est)
    # One-time work (imports, first calls) untimed.
    fit_together([estimator(names[0], args, 0) for _ in range(2)], X[:64], y[:64])
    stacked = alone = 0.0
    for group in groups.values():
        start = time.process_time()
        _, reason = fit_together(group, X, y, task_id)
        together = time.process_time() - start
        start = time.process_time()
        for est in group:
            copy.deepcopy(est).fit(X, y, task_id=task_id)
        own = time.process_time() - start
        members = sorted({f"{type(e.penalty).__name__}" for e in group})
        print(
            f"  {len(group):2d} candidates ({', '.join(members)}): stacked "
            f"{together:5.1f} s, one by one {own:5.1f} s (CPU)"
            + ("" if reason is None else f" [not stacked: {reason}]")
        )
        stacked, alone = stacked + together, alone + own
    steps = 3 * args.epochs * -(-args.n_samples // args.batch_size)
    print(
        f"{len(runs)} runs ({len(names)} strategies x {args.seeds} seeds) of 3 "
        f"tasks, {steps} steps each, in {len(groups)} stacks: stacked "
        f"{stacked:.1f} s, one by one {alone:.1f} s, ratio {stacked / alone:.2f}"
    )
    return stacked, alone


if __name__ == "__main__":
    main()
