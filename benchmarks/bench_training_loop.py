"""Training-loop overhead of skcl against a hand-written PyTorch loop.

Both train the same MLP with the same optimizer, data, batch size and one
torch thread, one epoch per run; the runs alternate and each figure is the
median of ``--repeats`` runs. skcl's time is the whole ``partial_fit`` call
(input validation and tensor conversion included). The last rows compare
skcl's implicit penalty step with its explicit one (SGD with momentum 0.9,
the same run alternating them).

    python benchmarks/bench_training_loop.py
"""

import argparse
import itertools
import platform
import time
from functools import partial

import numpy as np
import torch
from sklearn.datasets import load_digits

from skcl import ContinualClassifier
from skcl.penalties import EWC, L2


def make_mlp(sizes, seed):
    torch.manual_seed(seed)
    layers = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    return torch.nn.Sequential(*layers)


def hand_loop(X, y, sizes, batch_size, lam, lr, optimizer=torch.optim.SGD):
    """The loop a user writes: shuffle, index each batch, step."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(sizes, 0)
    optimizer = optimizer(model.parameters(), lr=lr)
    anchor = [p.detach().clone() for p in model.parameters()]
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
        if lam:
            loss = loss + lam / 2 * sum(
                ((p - a) ** 2).sum()
                for p, a in zip(model.parameters(), anchor, strict=True)
            )
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def skcl_loop(
    X,
    y,
    sizes,
    batch_size,
    lam,
    lr,
    penalty=L2,
    step="implicit",
    momentum=0.0,
    optimizer=torch.optim.SGD,
):
    clf = ContinualClassifier(
        module__hidden_sizes=tuple(sizes[1:-1]),
        optimizer=optimizer,
        penalty=penalty(lam=lam) if lam else None,
        penalty_step=step,
        lr=lr,
        momentum=momentum,
        batch_size=batch_size,
        max_epochs=1,
        keep_snapshots=False,
        random_state=0,
    )
    # Task 0 initializes; the timed call is task 1, where the penalty is active.
    clf.partial_fit(X[:batch_size], y[:batch_size], task_id=0, classes=np.arange(10))
    start = time.perf_counter()
    clf.partial_fit(X, y, task_id=1)
    return time.perf_counter() - start


def compare(name, reference, ours, repeats, target):
    """Alternate the two runs ``repeats`` times; print and return the ratio of
    the medians, ``ours`` over ``reference``."""
    times = [[], []]
    for _ in range(repeats):
        times[0].append(reference())
        times[1].append(ours())
    first, second = np.median(times[0]), np.median(times[1])
    ratio = second / first
    verdict = "ok" if ratio <= target else "OVER"
    print(
        f"{name:<34} {first:8.3f} s {second:8.3f} s {ratio:7.2f}x"
        f"  (target <= {target:.2f}x: {verdict})"
    )
    return ratio


def measure(name, X, y, sizes, batch_size, lam, repeats, target, optimizer):
    """skcl against the hand-written loop, without momentum."""
    lr = 0.01 if optimizer is torch.optim.SGD else 0.001
    return compare(
        name,
        lambda: hand_loop(X, y, sizes, batch_size, lam, lr, optimizer),
        lambda: skcl_loop(X, y, sizes, batch_size, lam, lr, optimizer=optimizer),
        repeats,
        target,
    )


def measure_steps(name, X, y, sizes, batch_size, penalty, repeats, target):
    """skcl's implicit penalty step against its explicit one, momentum 0.9."""

    def run(step):
        return skcl_loop(X, y, sizes, batch_size, 1.0, 0.01, penalty, step, 0.9)

    return compare(
        name, lambda: run("explicit"), lambda: run("implicit"), repeats, target
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=10_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, torch {torch.__version__}, 1 thread")
    rng = np.random.RandomState(0)
    X = rng.rand(args.n_samples, 784).astype(np.float32)
    y = rng.randint(0, 10, args.n_samples)
    digits = load_digits()
    Xd = np.tile((digits.data / 16).astype(np.float32), (3, 1))
    yd = np.tile(digits.target, 3)
    print(f"{'configuration':<34} {'hand':>10} {'skcl':>10} {'ratio':>8}")
    for optimizer in (torch.optim.SGD, torch.optim.Adam):
        name = optimizer.__name__
        for batch_size in (10, 128):
            target = 0.90 if batch_size == 10 else 1.0
            for lam in (0.0, 1.0):
                label = f"784-256-256-10 bs={batch_size} {name}" + (
                    " +L2" if lam else ""
                )
                sizes = (784, 256, 256, 10)
                measure(
                    label, X, y, sizes, batch_size, lam, args.repeats, target, optimizer
                )
        sizes = (64, 100, 100, 10)
        measure(
            f"64-100-100-10 digits bs=10 {name}",
            Xd,
            yd,
            sizes,
            10,
            0.0,
            args.repeats,
            0.90,
            optimizer,
        )
    print(f"{'penalty step, momentum 0.9':<34} {'explicit':>10} {'implicit':>10}")
    for batch_size in (10, 128):
        # EWC's Fisher on a few samples: the steps dominate the time.
        for penalty in (L2, partial(EWC, n_samples=batch_size)):
            name = getattr(penalty, "func", penalty).__name__
            label = f"784-256-256-10 bs={batch_size} {name}"
            sizes = (784, 256, 256, 10)
            measure_steps(label, X, y, sizes, batch_size, penalty, args.repeats, 1.10)


if __name__ == "__main__":
    main()
