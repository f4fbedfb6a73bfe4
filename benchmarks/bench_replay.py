"""Replay's cost in skcl against a hand-written PyTorch loop doing the same.

ER: each step trains on the batch and up to ``--memory-batch`` samples drawn
without replacement from a reservoir of ``--memory-size`` samples (one mean
loss over both), then offers the batch to the reservoir (algorithm R,
vectorized per batch). A-GEM: each step takes the reference gradient on up
to ``--memory-batch`` samples of the earlier task's per-class memory (one
per class), projects the gradient when it conflicts, then writes the batch
into the current task's per-class slots. Both train the MLP 784-256-256-10
with plain SGD at batch 32 (Stable SGD's Table 2 baselines), one torch
thread; task 0 fills the memories and the timed run is task 1's epoch. The
runs alternate and each figure is the median of ``--repeats`` runs; skcl's
time is the whole ``partial_fit`` call.

    python benchmarks/bench_replay.py
"""

import argparse
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from bench_training_loop import compare, make_mlp

from skcl import ContinualClassifier
from skcl.replay import AGEM, ER

SIZES = (784, 256, 256, 10)


def draw(n_filled, k):
    rows = torch.arange(n_filled)
    return rows if n_filled <= k else rows[torch.randperm(n_filled)[:k]]


def reservoir_update(memory_X, memory_y, n_seen, X, y):
    capacity = len(memory_X)
    seen = torch.arange(n_seen + 1, n_seen + len(X) + 1, dtype=torch.float64)
    draws = torch.floor(torch.rand(len(X), dtype=torch.float64) * seen)
    slots = torch.where(seen <= capacity, seen - 1, draws).long()
    rows = (slots < capacity).nonzero()[:, 0]
    if len(rows):
        slots = slots[rows]
        # Of two rows drawing the same slot, the later one stays.
        order = torch.argsort(slots, stable=True)
        slots, rows = slots[order], rows[order]
        last = torch.ones_like(slots, dtype=torch.bool)
        last[:-1] = slots[1:] != slots[:-1]
        memory_X[slots[last]] = X[rows[last]]
        memory_y[slots[last]] = y[rows[last]]
    return n_seen + len(X)


def hand_er(X0, y0, X, y, memory_size, memory_batch, batch_size, lr):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(SIZES, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    memory_X = torch.as_tensor(X0[:memory_size]).clone()
    memory_y = torch.as_tensor(y0[:memory_size]).clone()
    n_seen = len(X0)
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        Xb, yb = X[index], y[index]
        rows = draw(min(n_seen, memory_size), memory_batch)
        inputs = torch.cat([Xb, memory_X[rows]])
        targets = torch.cat([yb, memory_y[rows]])
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        n_seen = reservoir_update(memory_X, memory_y, n_seen, Xb, yb)
    return time.perf_counter() - start


def hand_agem(X0, y0, X, y, memory_batch, batch_size, lr, n_classes=10):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(SIZES, 0)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=lr)
    # One sample per class of task 0 (its last), then slots for task 1.
    y0 = torch.as_tensor(y0)
    last = torch.zeros(n_classes, dtype=torch.long).scatter_reduce_(
        0, y0, torch.arange(len(y0)), "amax", include_self=False
    )
    memory_X = torch.cat([torch.as_tensor(X0)[last], torch.zeros(n_classes, 784)])
    memory_y = torch.cat([torch.arange(n_classes), torch.arange(n_classes)])
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        Xb, yb = X[index], y[index]
        optimizer.zero_grad()
        F.cross_entropy(model(Xb), yb).backward()
        rows = draw(n_classes, memory_batch)
        loss = F.cross_entropy(model(memory_X[rows]), memory_y[rows])
        reference = torch.autograd.grad(loss, params)
        grads = [p.grad for p in params]
        pairs = zip(grads, reference, strict=True)
        dot = sum(torch.vdot(g.ravel(), r.ravel()) for g, r in pairs)
        if dot < 0:
            norm = sum(torch.vdot(r.ravel(), r.ravel()) for r in reference)
            torch._foreach_add_(grads, reference, alpha=-(dot / norm).item())
        optimizer.step()
        last = torch.full((n_classes,), -1).scatter_reduce_(
            0, yb, torch.arange(len(yb)), "amax"
        )
        present = (last >= 0).nonzero()[:, 0]
        memory_X[n_classes + present] = Xb[last[present]]
    return time.perf_counter() - start


def skcl_run(X0, y0, X, y, replay, batch_size, lr):
    clf = ContinualClassifier(
        module__hidden_sizes=SIZES[1:-1],
        replay=replay,
        lr=lr,
        momentum=0.0,
        batch_size=batch_size,
        max_epochs=1,
        keep_snapshots=False,
        random_state=0,
    )
    clf.partial_fit(X0, y0, task_id=0, classes=np.arange(10))
    start = time.perf_counter()
    clf.partial_fit(X, y, task_id=1)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--memory-size", type=int, default=200)
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, torch {torch.__version__}, 1 thread")
    rng = np.random.RandomState(0)
    X = rng.rand(args.n_samples, 784).astype(np.float32)
    y = rng.randint(0, 10, args.n_samples)
    # Task 0: enough samples to fill the reservoir and every class's slot.
    X0, y0 = X[: args.memory_size], y[: args.memory_size]
    bs, k, lr = args.batch_size, args.memory_batch, 0.1
    print(f"{'configuration':<34} {'hand':>10} {'skcl':>10} {'ratio':>8}")
    compare(
        f"ER memory {args.memory_size} bs={bs}+{k}",
        lambda: hand_er(X0, y0, X, y, args.memory_size, k, bs, lr),
        lambda: skcl_run(
            X0, y0, X, y, ER(memory_size=args.memory_size, memory_batch_size=k), bs, lr
        ),
        args.repeats,
        1.10,
    )
    compare(
        f"A-GEM 1 per class bs={bs} ref<={k}",
        lambda: hand_agem(X0, y0, X, y, k, bs, lr),
        lambda: skcl_run(X0, y0, X, y, AGEM(memory_batch_size=k), bs, lr),
        args.repeats,
        1.10,
    )


if __name__ == "__main__":
    main()
