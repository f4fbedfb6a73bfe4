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

The memory baselines of Stable SGD's Table 2, ``er`` and ``agem``, have a loop
of their own written like the authors' code (plain SGD at lr 0.1, batch 32, a
memory of ``per_class`` samples per class per task, memory batches of 64):
ER trains each step on the new batch and a memory batch together and fills
its memory by reservoir sampling over the whole stream; A-GEM projects the
gradient off a reference gradient from the previous tasks' memory, which
gains each task's last sample of every class. ``--which`` picks the runs
(``--tf-init``, the authors' initialization, and ``--with-replacement`` are
the loop's alone).

    python benchmarks/reference_loop.py --stream rotated-mnist --strategy stable-sgd \
        --lr 0.055 --lr-decay 0.55 --batch-size 64 --dropout 0.25 --seeds 3
    python benchmarks/reference_loop.py --stream permuted-mnist --strategy er --seeds 3
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
REPLAY = ("er", "agem")


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
        R[k] = _evaluate(model, stream)
    return R


def _evaluate(model, stream):
    """The accuracy of ``model`` on each task's held-out samples."""
    model.eval()
    X_test = torch.as_tensor(stream.X_test)
    y_test = torch.as_tensor(stream.y_test)
    row = np.zeros(stream.n_tasks)
    with torch.no_grad():
        for i in range(stream.n_tasks):
            rows = torch.as_tensor(stream.t_test == i)
            predicted = model(X_test[rows]).argmax(1)
            row[i] = (predicted == y_test[rows]).double().mean().item()
    return row


def _tf_init(model):
    """The authors' TensorFlow initialisation of ``model``'s layers.

    Weights from a normal of std 0.1 truncated at two stds, biases 0.1.
    """
    with torch.no_grad():
        for linear in model.linears:
            torch.nn.init.trunc_normal_(linear.weight, std=0.1, a=-0.2, b=0.2)
            torch.nn.init.constant_(linear.bias, 0.1)


class _Memory:
    """Samples in a fixed number of slots; ``valid`` marks the written ones."""

    def __init__(self, size, n_features):
        self.x = torch.zeros(size, n_features)
        self.y = torch.zeros(size, dtype=torch.long)
        self.valid = torch.zeros(size, dtype=torch.bool)

    def write(self, slots, x, y):
        """Write sample ``i`` to ``slots[i]``, in order: a later write wins."""
        last = torch.full_like(self.y, -1).scatter_reduce_(
            0, slots, torch.arange(len(slots)), "amax"
        )
        written = last >= 0
        self.x[written] = x[last[written]]
        self.y[written] = y[last[written]]
        self.valid |= written

    def sample(self, k, replace=False):
        """Up to ``k`` written samples without replacement (``k`` with ``replace``)."""
        (rows,) = self.valid.nonzero(as_tuple=True)
        if replace and len(rows):
            rows = rows[torch.randint(len(rows), (k,))]
        else:
            rows = rows[torch.randperm(len(rows))[:k]]
        return self.x[rows], self.y[rows]


def _reservoir_slots(seen, m, size):
    """Algorithm R's slots for samples ``seen + 1 ... seen + m`` of the stream.

    The n-th sample takes slot n - 1 while n <= ``size``, then a uniform slot
    in [0, n), kept only when it is below ``size``.
    """
    n = torch.arange(seen + 1, seen + m + 1, dtype=torch.float64)
    drawn = torch.minimum((torch.rand(m, dtype=torch.float64) * n).floor(), n - 1)
    slots = torch.where(n <= size, n - 1, drawn).long()
    return slots[slots < size], slots < size


def _ring_slots(labels, count, per_class):
    """Each class's ``per_class`` slots, written in turn from its ``count``."""
    onehot = F.one_hot(labels, len(count))
    rank = onehot.cumsum(0).gather(1, labels[:, None]).squeeze(1) - 1
    return labels * per_class + (count[labels] + rank) % per_class, onehot.sum(0)


def _agem_step(model, optimizer, x, y, reference):
    """One SGD step on ``(x, y)``, its gradient projected off ``reference``'s."""
    params = list(model.parameters())
    if reference is not None:
        loss = F.cross_entropy(model(reference[0]), reference[1])
        g_ref = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    if reference is not None:
        g = torch.cat([p.grad.flatten() for p in params])
        dot = g @ g_ref
        if dot < 0:
            g -= dot / (g_ref @ g_ref) * g_ref
            torch.nn.utils.vector_to_parameters(g, [p.grad for p in params])
    optimizer.step()


def hand_replay_loop(
    stream,
    method,
    seed,
    *,
    lr=0.1,
    batch_size=32,
    per_class=1,
    memory_batch_size=64,
    hidden=(256, 256),
    replace=False,
    tf_init=False,
):
    """Train ER (``"er"``) or A-GEM (``"agem"``) on ``stream``; return R.

    The memory has ``per_class`` slots per class per task. ER trains each
    step on the concatenated new batch and up to ``memory_batch_size`` memory
    samples (one mean cross-entropy), then passes the new samples through
    the reservoir; replay starts at task 0. A-GEM's reference gradient comes
    from up to ``memory_batch_size`` samples of the previous tasks' memory;
    each task's ring buffer (written with every new sample) joins it at the
    task's end. Memory batches are drawn without replacement unless
    ``replace``; ``tf_init`` initialises the MLP as the authors' TensorFlow
    code does instead of PyTorch's default.
    """
    if method not in REPLAY:
        raise ValueError(f"method must be one of {REPLAY}, got {method!r}.")
    torch.manual_seed(seed)
    X0, _ = stream.task(0)
    n_features, n_classes, T = X0.shape[1], len(stream.classes), stream.n_tasks
    model = _MLP([n_features, *hidden, n_classes], 0.0, False)
    if tf_init:
        _tf_init(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    classes = torch.as_tensor(stream.classes)
    size = per_class * n_classes * T
    memory, seen = _Memory(size, n_features), 0
    R = np.zeros((T, T))
    for k in range(T):
        X, y = (torch.as_tensor(a) for a in stream.task(k))
        ring = _Memory(per_class * n_classes, n_features)
        count = torch.zeros(n_classes, dtype=torch.long)
        model.train()
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            xb, yb = X[batch], y[batch]
            if method == "er":
                xm, ym = memory.sample(memory_batch_size, replace)
                optimizer.zero_grad()
                loss = F.cross_entropy(model(torch.cat([xb, xm])), torch.cat([yb, ym]))
                loss.backward()
                optimizer.step()
                slots, kept = _reservoir_slots(seen, len(yb), size)
                memory.write(slots, xb[kept], yb[kept])
                seen += len(yb)
            else:
                reference = memory.sample(memory_batch_size, replace) if k else None
                _agem_step(model, optimizer, xb, yb, reference)
                slots, counts = _ring_slots(
                    torch.searchsorted(classes, yb), count, per_class
                )
                ring.write(slots, xb, yb)
                count += counts
        if method == "agem":
            filled, new = int(memory.valid.sum()), int(ring.valid.sum())
            memory.write(
                torch.arange(filled, filled + new),
                ring.x[ring.valid],
                ring.y[ring.valid],
            )
        R[k] = _evaluate(model, stream)
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
    if which == "loop" and strategy in REPLAY:
        R = hand_replay_loop(stream, strategy, seed, **options)
    elif which == "loop":
        R = hand_loop(stream, params, seed, **options)
    else:
        R = np.array(run_strategy(stream, strategy, params, seed)["R"])
    return scores(R), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="rotated-mnist")
    parser.add_argument("--strategy", choices=STRATEGIES + REPLAY, default="stable-sgd")
    parser.add_argument(
        "--which",
        help="comma-separated runs among loop and skcl (default: those that exist)",
    )
    parser.add_argument("--n-tasks", type=int)
    parser.add_argument("--train-size", type=int, help="training images per task")
    parser.add_argument("--data-home", default="../shared/data/mnist")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    for name in ("lr", "lr-decay", "dropout"):
        parser.add_argument(f"--{name}", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--test-dropout", action="store_true")
    parser.add_argument("--unshuffled", action="store_true")
    replay = parser.add_argument_group("er and agem")
    replay.add_argument("--per-class", type=int, help="memory slots per class per task")
    replay.add_argument("--memory-batch-size", type=int)
    replay.add_argument(
        "--with-replacement",
        action="store_true",
        help="draw memory batches with replacement",
    )
    replay.add_argument(
        "--tf-init",
        action="store_true",
        help="initialise as the authors' TensorFlow code (std 0.1, biases 0.1)",
    )
    args = parser.parse_args(argv)
    stream_args = dict(
        name=args.stream,
        n_tasks=args.n_tasks,
        data_home=args.data_home,
        train_size=args.train_size,
    )
    if args.strategy in REPLAY:
        n_tasks = args.n_tasks or (5 if args.stream.endswith("digits") else 20)
        per_class = args.per_class or 1
        params = strategy_params(
            args.strategy,
            regime_of(args.stream),
            {
                "lr": args.lr,
                "batch_size": args.batch_size,
                "memory_size": per_class
                * (1 if args.strategy == "agem" else 10 * n_tasks),
            },
            n_tasks=n_tasks,
        )
        if args.memory_batch_size is not None:
            params["replay"].set_params(memory_batch_size=args.memory_batch_size)
        overrides = {
            "lr": args.lr,
            "batch_size": args.batch_size,
            "per_class": args.per_class,
            "memory_batch_size": args.memory_batch_size,
        }
        options = {k: v for k, v in overrides.items() if v is not None}
        options.update(replace=args.with_replacement, tf_init=args.tf_init)
        # skcl draws without replacement and initializes as PyTorch does.
        exact = not (args.with_replacement or args.tf_init)
        available = ("loop", "skcl") if exact else ("loop",)
    else:
        overrides = {
            "lr": args.lr,
            "lr_decay": args.lr_decay,
            "dropout": args.dropout,
            "batch_size": args.batch_size,
        }
        params = strategy_params(args.strategy, regime_of(args.stream), overrides)
        options = dict(test_dropout=args.test_dropout, unshuffled=args.unshuffled)
        available = ("loop", "skcl")
    whiches = tuple(args.which.split(",")) if args.which else available
    if not set(whiches) <= set(available):
        parser.error(f"--which for {args.strategy} must be among {available}")
    runs = [(seed, which) for seed in range(args.seeds) for which in whiches]
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(_run)(stream_args, args.strategy, params, seed, which, options)
        for seed, which in runs
    )
    print(f"{args.strategy} on {args.stream}, {options}, train size {args.train_size}")
    header = ("run", "seed", "accuracy", "forgetting", "learning", "s")
    print("{:<6} {:>4} {:>9} {:>11} {:>9} {:>6}".format(*header))
    for (seed, which), ((accuracy, forgetting, learning), seconds) in zip(
        runs, results, strict=True
    ):
        print(
            f"{which:<6} {seed:>4} {accuracy:9.3f} {forgetting:11.3f} "
            f"{learning:9.3f} {seconds:6.0f}"
        )
    for which in whiches:
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
