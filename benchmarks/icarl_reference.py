"""iCaRL on the DER paper's Seq-MNIST in a hand-written loop, as Mammoth runs it.

The loop does what Mammoth's code at the DER paper's commit (aimagelab/mammoth
7ab9db9: ``models/icarl.py``, ``utils/buffer.py``, ``utils/training.py``,
``datasets/seq_mnist.py``, ``backbone/MNISTMLP.py``, ``utils/best_args.py``)
does on Seq-MNIST, with torch and numpy only (MNIST read by
``skcl.datasets.fetch_mnist``):

- MNIST in 5 tasks of digits (0, 1), (2, 3), ..., pixels in [0, 1], one
  epoch per task in mini-batches of 10 from a fresh shuffle, plain SGD at
  lr 0.1 made once for the whole stream, ``wd_reg`` 0 (best_args.py);
- MLP 784-100-100-10, ReLU, Xavier-uniform weights and zero biases; the
  features are the second hidden layer's activations, not normalised;
- loss: the mean binary cross-entropy with logits over the outputs of the
  classes of the tasks so far, one-hot targets for the current task's
  classes and, for the earlier classes, the sigmoid outputs of the network
  as it was at the end of the previous task;
- at each task's end: each earlier class keeps the first ``M // n_seen`` of
  its exemplars, then each new class gains ``M // n_seen`` exemplars chosen
  by herding among all its training images, in the network's feature space;
- evaluation: the nearest mean of exemplars (class means of the exemplars'
  features with the network after the task), class-IL over the 10 digits,
  task-IL over the task's two.

How the exemplars enter training is the one thing that differs between the
versions of that code, chosen by ``--replay``:

``none``
    The DER paper's commit: ``utils/training.py`` never calls the model's
    ``begin_task``, so the exemplars never enter training (they only give
    the class means). ``minibatch_size`` in ``best_args.py`` is unused.
``blank``
    After b48788a ("fix missing callback") and 5dc82be ("Fix denorm in
    icarl"): ``begin_task`` appends the exemplars to the task's training set,
    but casts the stored [0, 1] images to uint8 first, so each replayed
    image is ``floor(x) / 255`` (every pixel 0 except saturated ones, which
    become 1/255).
``concat``
    The evident intent: the exemplars appended to the task's training set
    intact (about one row in 60).
``batch``
    skcl's :class:`skcl.replay.ICaRL`: ``--memory-batch-size`` exemplars of
    the earlier classes drawn each step beside the mini-batch.

    python benchmarks/icarl_reference.py --data-home ../shared/data --seeds 3
    python benchmarks/icarl_reference.py --replay batch --memory-size 500
"""

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from skcl.datasets import fetch_mnist

REPLAY = ("none", "blank", "concat", "batch")


def _mlp():
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return net


def _herding(features, m):
    """Mammoth's ``fill_buffer`` loop: ``m`` rows in herding order."""
    features = features.clone()
    target = features.mean(0, keepdim=True)
    total = torch.zeros_like(target)
    chosen = []
    for i in range(min(m, len(features))):
        k = int((target - (features + total) / (i + 1)).norm(2, 1).argmin())
        chosen.append(k)
        total += features[k : k + 1]
        features[k] = features[k] + 1e6
    return chosen


def run(data, seed, replay, memory_size, memory_batch_size, lr, batch_size):
    """Train one seed; return the class-IL and task-IL accuracy (%) after the
    last task, averaged over the tasks, and the training seconds."""
    X, y, X_test, y_test = data
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    generator = torch.Generator().manual_seed(seed)
    net = _mlp()
    features = net[:4]
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    eye = torch.eye(10)
    mem_X = torch.zeros(0, 784)
    mem_y = torch.zeros(0, dtype=torch.long)
    teacher, seen = None, []
    tasks = [(2 * t, 2 * t + 1) for t in range(5)]
    seconds = 0.0
    for t, classes in enumerate(tasks):
        start = time.perf_counter()
        rows = torch.isin(y, torch.tensor(classes)).nonzero()[:, 0]
        X_t, y_t = X[rows], y[rows]
        if t and replay in ("blank", "concat"):
            kept = mem_X.floor() / 255 if replay == "blank" else mem_X
            X_t, y_t = torch.cat([X_t, kept]), torch.cat([y_t, mem_y])
        pc, ac = 2 * t, 2 * t + 2
        order = torch.from_numpy(rng.permutation(len(y_t)))
        for i in range(0, len(order), batch_size):
            b = order[i : i + batch_size]
            inputs, labels = X_t[b], y_t[b]
            if t and replay == "batch":
                pick = torch.randperm(len(mem_y), generator=generator)
                pick = pick[:memory_batch_size]
                inputs = torch.cat([inputs, mem_X[pick]])
                labels = torch.cat([labels, mem_y[pick]])
            outputs = net(inputs)[:, :ac]
            targets = eye[labels][:, :ac]
            if t:
                with torch.no_grad():
                    old = torch.sigmoid(teacher(inputs))
                targets = torch.cat([old[:, :pc], targets[:, pc:]], dim=1)
            loss = F.binary_cross_entropy_with_logits(outputs, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
        teacher = copy.deepcopy(net).eval()
        seen = sorted(set(seen) | set(classes))
        m = memory_size // len(seen)
        with torch.no_grad():
            keep = [(mem_y == c).nonzero()[:m, 0] for c in mem_y.unique().tolist()]
            keep = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)
            mem_X, mem_y = mem_X[keep], mem_y[keep]
            X_task, y_task = X[rows], y[rows]
            for c in classes:
                X_c = X_task[y_task == c]
                chosen = _herding(features(X_c), m)
                mem_X = torch.cat([mem_X, X_c[chosen]])
                mem_y = torch.cat([mem_y, torch.full((len(chosen),), c)])
        seconds += time.perf_counter() - start
    with torch.no_grad():
        F_mem = features(mem_X)
        means = torch.stack([F_mem[mem_y == c].mean(0) for c in range(10)])
        distances = (features(X_test)[:, None, :] - means[None]).pow(2).sum(-1)
    class_il, task_il = [], []
    for classes in tasks:
        rows = torch.isin(y_test, torch.tensor(classes)).nonzero()[:, 0]
        d, labels = distances[rows], y_test[rows]
        class_il.append(float((d.argmin(1) == labels).float().mean()))
        own = d[:, list(classes)].argmin(1) + classes[0]
        task_il.append(float((own == labels).float().mean()))
    return 100 * np.mean(class_il), 100 * np.mean(task_il), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--replay", default=",".join(REPLAY), help=f"comma-separated: {REPLAY}"
    )
    parser.add_argument("--memory-size", type=int, default=200)
    parser.add_argument("--memory-batch-size", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, X_test, y, y_test = fetch_mnist(
        args.data_home, download_if_missing=False, return_X_y=True
    )
    data = tuple(map(torch.from_numpy, (X, y, X_test, y_test)))
    print(f"memory {args.memory_size}, lr {args.lr}, batch {args.batch_size}")
    for replay in args.replay.split(","):
        if replay not in REPLAY:
            parser.error(f"--replay takes {REPLAY}, not {replay!r}")
        scores = [
            run(
                data,
                seed,
                replay,
                args.memory_size,
                args.memory_batch_size,
                args.lr,
                args.batch_size,
            )
            for seed in range(args.seeds)
        ]
        cil, til, sec = np.array(scores).T
        label = replay + (f" {args.memory_batch_size}" if replay == "batch" else "")
        print(
            f"{label:9s} class-IL {cil.mean():5.2f} +- {cil.std():4.2f}  "
            f"task-IL {til.mean():5.2f} +- {til.std():4.2f}  "
            f"({', '.join(f'{c:.2f}' for c in cil)}; {sec.mean():.1f} s per seed)"
        )


if __name__ == "__main__":
    main()
