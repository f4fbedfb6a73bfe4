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
iCaRL and BiC runs are class-incremental (task 0 of classes 0-4, task 1 of
5-9) and include the work after the epoch: iCaRL's herding (skcl's
``herding``) and class means, BiC's bias layer (skcl's ``fit_bias_layer``)
on its held-out rows (skcl's row hash). ER-ACE: ER's reservoir and memory
batch, the incoming batch's cross-entropy over its own classes and the
unseen ones, the memory batch's over all, the two means summed. GEM: before
the timed task, ``--gem-tasks`` tasks each leave their last
``--gem-memory`` samples; each step takes the gradient of every past
task's memory, solves the dual QP when one conflicts (skcl's
``solve_dual``), and writes the batch into the current task's ring; last,
GEM's QP per step (the Gram matrix, the solve and ``G^T v``, float64)
against its number of past tasks. The
runs alternate and each figure is the median of ``--repeats`` runs; skcl's
time is the whole ``partial_fit`` call.

    python benchmarks/bench_replay.py
"""

import argparse
import copy
import itertools
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from bench_training_loop import compare, make_mlp

from skcl import ContinualClassifier
from skcl.replay import AGEM, ER, ERACE, GEM, BiC, ICaRL
from skcl.replay._bic import fit_bias_layer
from skcl.replay._gem import solve_dual
from skcl.replay._icarl import herding

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


def hand_icarl(X0, y0, X, y, memory_size, memory_batch, batch_size, lr):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(SIZES, 0)
    teacher = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    memory_X, memory_y = (
        torch.as_tensor(X0[:memory_size]),
        torch.as_tensor(y0[:memory_size]),
    )
    old = torch.zeros(10, dtype=torch.bool)
    old[memory_y] = True
    active = old.clone()
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        Xb, yb = X[index], y[index]
        active[yb] = True
        rows = draw(len(memory_y), memory_batch)
        inputs = torch.cat([Xb, memory_X[rows]])
        labels = torch.cat([yb, memory_y[rows]])
        targets = torch.zeros(len(labels), 10).scatter_(1, labels[:, None], 1.0)
        with torch.no_grad():
            targets = torch.where(old, torch.sigmoid(teacher(inputs)), targets)
        weight = active.float().expand_as(targets)
        optimizer.zero_grad()
        logits = model(inputs)
        loss = F.binary_cross_entropy_with_logits(
            logits, targets, weight=weight, reduction="sum"
        )
        (loss / weight.sum()).backward()
        optimizer.step()
    with torch.no_grad():
        features = model[:-1]
        X_all, y_all = torch.cat([memory_X, X]), torch.cat([memory_y, y])
        m = memory_size // 10
        kept = []
        for c in range(10):
            rows = (y_all == c).nonzero()[:, 0]
            if not old[c]:
                rows = rows[herding(features(X_all[rows]), m)]
            kept.append(rows[:m])
        kept = torch.cat(kept)
        f = features(X_all[kept])
        torch.zeros(10, f.shape[1]).index_add_(0, y_all[kept], f)
    return time.perf_counter() - start


def _held_out(key, X, fraction):
    grid = torch.round(X.double() * 2.0**16).long()
    return (((grid * key).sum(1) >> 39) & (2**24 - 1)) < fraction * 2**24


def hand_bic(X0, y0, X, y, memory_size, memory_batch, batch_size, lr):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(SIZES, 0)
    teacher = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    memory_X = torch.as_tensor(X0[:memory_size]).clone()
    memory_y = torch.as_tensor(y0[:memory_size]).clone()
    n_seen = len(X0)
    key = torch.randint(-(2**62), 2**62, (784,))
    old = torch.zeros(10, dtype=torch.bool)
    old[memory_y] = True
    old_index = old.nonzero()[:, 0]
    new = torch.zeros(10, dtype=torch.bool)
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        Xb, yb = X[index], y[index]
        kept = ~_held_out(key, Xb, 0.1)
        Xb, yb = Xb[kept], yb[kept]
        new[yb] = True
        rows = draw(min(n_seen, memory_size), memory_batch)
        inputs = torch.cat([Xb, memory_X[rows]])
        targets = torch.cat([yb, memory_y[rows]])
        optimizer.zero_grad()
        logits = model(inputs)
        with torch.no_grad():
            old_logits = teacher(inputs)[:, old_index]
        kd = 4 * F.kl_div(
            F.log_softmax(logits[:, old_index] / 2, 1),
            F.log_softmax(old_logits / 2, 1),
            log_target=True,
            reduction="batchmean",
        )
        lam = len(old_index) / (len(old_index) + int(new.sum()))
        ((1 - lam) * F.cross_entropy(logits, targets) + lam * kd).backward()
        optimizer.step()
        n_seen = reservoir_update(memory_X, memory_y, n_seen, Xb, yb)
    with torch.no_grad():
        held = _held_out(key, X, 0.1)
        share = int(0.1 * memory_size / 10)
        X_held = torch.cat([X[held][y[held] == c][:share] for c in range(5, 10)])
        y_held = torch.cat([y[held][y[held] == c][:share] for c in range(5, 10)])
        fit_bias_layer(model(X_held), y_held, new, epochs=200, lr=0.1)
    return time.perf_counter() - start


def hand_erace(X0, y0, X, y, memory_size, memory_batch, batch_size, lr):
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(SIZES, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    memory_X = torch.as_tensor(X0[:memory_size]).clone()
    memory_y = torch.as_tensor(y0[:memory_size]).clone()
    seen = torch.zeros(SIZES[-1], dtype=torch.bool)
    seen[memory_y] = True
    n_seen = len(X0)
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        Xb, yb = X[index], y[index]
        present = torch.zeros_like(seen)
        present[yb] = True
        seen |= present
        keep = present | ~seen
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Xb).masked_fill(~keep, float("-inf")), yb)
        rows = draw(min(n_seen, memory_size), memory_batch)
        loss = loss + F.cross_entropy(model(memory_X[rows]), memory_y[rows])
        loss.backward()
        optimizer.step()
        n_seen = reservoir_update(memory_X, memory_y, n_seen, Xb, yb)
    return time.perf_counter() - start


def hand_gem(tasks, X, y, per_task, batch_size, lr, margin=0.5, eps=1e-3):
    """``tasks``: the earlier tasks' ``(X, y)``, whose last ``per_task``
    samples make the memory."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = make_mlp(SIZES, 0)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=lr)
    memories = [
        (torch.as_tensor(Xk[-per_task:]), torch.as_tensor(yk[-per_task:]))
        for Xk, yk in tasks
    ]
    ring_X = torch.zeros(per_task, X.shape[1])
    ring_y = torch.zeros(per_task, dtype=torch.long)
    count = 0
    start = time.perf_counter()
    order = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        Xb, yb = X[index], y[index]
        G = torch.stack(
            [
                torch.cat(
                    [
                        g.reshape(-1)
                        for g in torch.autograd.grad(
                            F.cross_entropy(model(Xm), ym), params
                        )
                    ]
                )
                for Xm, ym in memories
            ]
        )
        optimizer.zero_grad()
        F.cross_entropy(model(Xb), yb).backward()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        if (G @ g < 0).any():
            G64, g64 = G.double(), g.double()
            v = solve_dual((G64 @ G64.T).numpy(), (G64 @ g64).numpy(), margin, eps)
            g = (g64 + G64.T @ torch.from_numpy(v)).float()
            torch._foreach_copy_(
                [p.grad for p in params],
                [
                    a.view_as(p)
                    for p, a in zip(
                        params, g.split([p.numel() for p in params]), strict=True
                    )
                ],
            )
        optimizer.step()
        slots = (count + torch.arange(len(yb))) % per_task
        ring_X[slots], ring_y[slots] = Xb, yb
        count += len(yb)
    return time.perf_counter() - start


def qp_cost(n_tasks, repeats=20):
    """Seconds per GEM projection (Gram matrix, solve, ``G^T v``) with
    ``n_tasks`` past tasks of the MLP's gradients."""
    n_params = sum(a * b + b for a, b in itertools.pairwise(SIZES))
    G = torch.randn(n_tasks, n_params, dtype=torch.float64)
    g = -G.sum(0)  # conflicts with every task
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        v = solve_dual((G @ G.T).numpy(), (G @ g).numpy(), 0.5, 1e-3)
        g + G.T @ torch.from_numpy(v)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


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
    earlier = [(X0, y0)] if isinstance(X0, np.ndarray) else X0
    for k, (Xk, yk) in enumerate(earlier):
        clf.partial_fit(Xk, yk, task_id=k, classes=np.arange(10))
    start = time.perf_counter()
    clf.partial_fit(X, y, task_id=len(earlier))
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--memory-size", type=int, default=200)
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--gem-tasks", type=int, default=4)
    parser.add_argument("--gem-memory", type=int, default=50)
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
    compare(
        f"ER-ACE memory {args.memory_size} bs={bs}+{k}",
        lambda: hand_erace(X0, y0, X, y, args.memory_size, k, bs, lr),
        lambda: skcl_run(
            X0,
            y0,
            X,
            y,
            ERACE(memory_size=args.memory_size, memory_batch_size=k),
            bs,
            lr,
        ),
        args.repeats,
        1.10,
    )
    T, m = args.gem_tasks, args.gem_memory
    earlier = [(rng.rand(m, 784).astype(np.float32), rng.randint(0, 10, m))] * T
    n = args.n_samples // 4  # GEM's steps cost T + 1 passes
    compare(
        f"GEM {T} past tasks x {m} bs={bs}",
        lambda: hand_gem(earlier, X[:n], y[:n], m, bs, lr),
        lambda: skcl_run(earlier, None, X[:n], y[:n], GEM(memory_size=m), bs, lr),
        args.repeats,
        1.10,
    )
    print(f"{'GEM QP per step: past tasks':<34} {'seconds':>10}")
    for tasks in (1, 2, 4, 9, 19):
        print(f"{tasks:<34} {qp_cost(tasks):10.2e}")
    # Class-incremental: task 0 of classes 0-4, task 1 of classes 5-9.
    y0_ci, y_ci = y0 % 5, 5 + y % 5
    kc = 10  # the DER paper's memory batch for iCaRL
    compare(
        f"iCaRL memory {args.memory_size} bs={bs}+{kc}",
        lambda: hand_icarl(X0, y0_ci, X, y_ci, args.memory_size, kc, bs, lr),
        lambda: skcl_run(
            X0,
            y0_ci,
            X,
            y_ci,
            ICaRL(memory_size=args.memory_size, memory_batch_size=kc),
            bs,
            lr,
        ),
        args.repeats,
        1.10,
    )
    compare(
        f"BiC memory {args.memory_size} bs={bs}+{k}",
        lambda: hand_bic(X0, y0_ci, X, y_ci, args.memory_size, k, bs, lr),
        lambda: skcl_run(
            X0,
            y0_ci,
            X,
            y_ci,
            BiC(memory_size=args.memory_size, memory_batch_size=k),
            bs,
            lr,
        ),
        args.repeats,
        1.10,
    )


if __name__ == "__main__":
    main()
