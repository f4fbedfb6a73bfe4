"""A benchmark strategy in a hand-written PyTorch loop, beside skcl's run.

Checks that a published number skcl misses is missed by a plain loop too.
The loop uses only torch and numpy: the preset's MLP (``nn.Linear`` layers,
ReLU, ``F.dropout``), SGD with momentum created anew at each task at
``lr * decay**k`` (floored), mini-batches from a fresh permutation of each
task, and the accuracy matrix and its metrics computed here, not by
``skcl.metrics``. Both read the same stream (``skcl benchmark``'s, drawn with
the run's seed). Two options follow the authors' code of Stable SGD:
``--test-dropout`` keeps dropout on when evaluating (their MLP calls
``F.dropout`` without ``training=``) and ``--unshuffled`` feeds each task's
images in file order.

    python benchmarks/reference_loop.py --stream rotated-mnist --strategy stable-sgd \
        --lr 0.055 --lr-decay 0.55 --batch-size 64 --dropout 0.25 --seeds 3
"""

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed

from skcl._benchmark import cached_stream, regime_of, run_strategy, strategy_params

STRATEGIES = ("naive", "stable-sgd")


class _MLP(torch.nn.Module):
    def __init__(self, sizes, dropout, test_dropout):
        super().__init__()
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes)
        )
        self.dropout, self.test_dropout = dropout, test_dropout

    def forward(self, x):
        for linear in self.linears[:-1]:
            x = F.dropout(
                F.relu(linear(x)),
                p=self.dropout,
                training=self.training or self.test_dropout,
            )
        return self.linears[-1](x)


def hand_loop(stream, params, seed, *, test_dropout=False, unshuffled=False):
    """Train on ``stream`` in a plain loop; return its accuracy matrix."""
    torch.manual_seed(seed)
    X0, _ = stream.task(0)
    sizes = [X0.shape[1], *params["module__hidden_sizes"], len(stream.classes)]
    model = _MLP(sizes, params.get("module__dropout", 0.0), test_dropout)
    batch_size = params["batch_size"]
    T = stream.n_tasks
    R = np.zeros((T, T))
    X_test = torch.as_tensor(stream.X_test)
    y_test = torch.as_tensor(stream.y_test)
    for k in range(T):
        X, y = (torch.as_tensor(a) for a in stream.task(k))
        lr = max(
            params["lr"] * params.get("lr_decay", 1.0) ** k, params.get("min_lr", 0.0)
        )
        optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=params["momentum"]
        )
        model.train()
        for _ in range(params["max_epochs"]):
            order = torch.arange(len(y)) if unshuffled else torch.randperm(len(y))
            for start in range(0, len(y), batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                F.cross_entropy(model(X[batch]), y[batch]).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            for i in range(T):
                rows = torch.as_tensor(stream.t_test == i)
                predicted = model(X_test[rows]).argmax(1)
                R[k, i] = (predicted == y_test[rows]).double().mean().item()
    return R


def scores(R):
    """Average accuracy, forgetting and learning accuracy of ``R``."""
    T = len(R)
    forgetting = np.mean(
        [max(R[k, i] for k in range(i, T - 1)) - R[-1, i] for i in range(T - 1)]
    )
    return R[-1].mean(), forgetting, np.diag(R).mean()


def _run(stream_args, strategy, params, seed, which, options):
    torch.set_num_threads(1)
    stream = cached_stream(**stream_args, seed=seed)
    start = time.perf_counter()
    if which == "loop":
        R = hand_loop(stream, params, seed, **options)
    else:
        R = np.array(run_strategy(stream, strategy, params, seed)["R"])
    return scores(R), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="rotated-mnist")
    parser.add_argument("--strategy", choices=STRATEGIES, default="stable-sgd")
    parser.add_argument("--n-tasks", type=int)
    parser.add_argument("--data-home", default="../shared/data/mnist")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    for name in ("lr", "lr-decay", "dropout"):
        parser.add_argument(f"--{name}", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--test-dropout", action="store_true")
    parser.add_argument("--unshuffled", action="store_true")
    args = parser.parse_args(argv)
    stream_args = dict(name=args.stream, n_tasks=args.n_tasks, data_home=args.data_home)
    regime = regime_of(args.stream)
    overrides = {
        "lr": args.lr,
        "lr_decay": args.lr_decay,
        "dropout": args.dropout,
        "batch_size": args.batch_size,
    }
    params = strategy_params(args.strategy, regime, overrides)
    options = dict(test_dropout=args.test_dropout, unshuffled=args.unshuffled)
    runs = [(seed, which) for seed in range(args.seeds) for which in ("loop", "skcl")]
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(_run)(stream_args, args.strategy, params, seed, which, options)
        for seed, which in runs
    )
    print(f"{args.strategy} on {args.stream}, {options}")
    header = ("run", "seed", "accuracy", "forgetting", "learning", "s")
    print("{:<6} {:>4} {:>9} {:>11} {:>9} {:>6}".format(*header))
    for (seed, which), ((accuracy, forgetting, learning), seconds) in zip(
        runs, results, strict=True
    ):
        print(
            f"{which:<6} {seed:>4} {accuracy:9.3f} {forgetting:11.3f} "
            f"{learning:9.3f} {seconds:6.0f}"
        )
    for which in ("loop", "skcl"):
        table = np.array(
            [r[0] for (_, w), r in zip(runs, results, strict=True) if w == which]
        )
        mean, std = table.mean(0), table.std(0)
        print(
            f"{which:<6} mean {mean[0]:.3f} ± {std[0]:.3f} / {mean[1]:.3f} ± "
            f"{std[1]:.3f} (accuracy / forgetting), learning {mean[2]:.3f}"
        )


if __name__ == "__main__":
    # Workers import this file by name rather than unpickling its classes.
    import reference_loop

    reference_loop.main()
