"""The DER paper's SGD, oEWC, SI, A-GEM and LwF rows in a loop like Mammoth's.

Checks whether a DER-table cell skcl misses is missed by the authors' recipe
too. The loop follows aimagelab/mammoth at 7ab9db9 (``utils/training.py``,
``models/sgd.py``, ``models/ewc_on.py``, ``models/si.py``, ``models/agem.py``,
``models/lwf.py``, the best settings of ``utils/best_args.py``) with torch and
numpy only: ``MNISTMLP`` (784-100-100-10, ReLU, Xavier-uniform weights, zero
biases), one SGD optimizer for the whole stream, one shuffled epoch per task
(last batch short), the batch-mean cross-entropy over all ten outputs.

- oEWC adds ``e_lambda * sum F (theta - theta*)^2``; after each task ``F <-
  gamma F + F_new``, ``F_new`` the mean over the task's samples of ``p(y|x)
  * (d log p(y|x) / d theta)^2`` at the true label (``--unweighted`` drops
  ``p(y|x)``: skcl's empirical Fisher).
- SI adds ``c * sum Omega (theta - theta*)^2``, clips every gradient entry
  to [-1, 1] before the step (``--no-clip`` leaves it out) and adds
  ``lr * g^2`` of the clipped gradient to the path integral; after each task
  ``Omega += omega / (Delta^2 + xi)``.
- A-GEM keeps ``--memory-size // T`` random samples of each task, stored at
  its end; each step takes the reference gradient on up to 128 of them
  (drawn without replacement) and projects the step's gradient when the
  two conflict.
- LwF (Seq-MNIST only) masks the cross-entropy to the classes seen and adds
  ``wd_reg * sum theta^2`` and ``alpha`` times the cross-entropy of
  ``softmax(z / 2)`` against the targets ``softmax(z_old / 2)``, both over
  the previous tasks' outputs; ``z_old`` are the network's outputs on the
  task's samples after its ``begin_task``, which first trains the output
  layer alone one epoch on the new task's outputs. 7ab9db9's
  ``utils/training.py`` never calls ``begin_task`` (added in b48788a):
  ``--no-begin-task`` runs LwF so, with no warm-up, no distillation and the
  cross-entropy over all ten outputs (its task counter stays at 0).

It reads the stream ``skcl benchmark`` builds with the same seed (or
``--stream-seed``) and prints the class-IL accuracy (and the task-IL one on
``seq-mnist``) of each seed, and their mean and std.

    python benchmarks/der_reference.py --stream der-permuted-mnist --strategy si \
        --stream-seed 0 --seeds 3
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skcl._benchmark import seed_streams

# Mammoth's best_args at 7ab9db9: lr, batch, and the method's own.
SETTINGS = {
    "seq-mnist": {
        "naive": dict(lr=0.03, batch=10),
        "online-ewc": dict(lr=0.03, batch=10, e_lambda=90.0, gamma=1.0),
        "si": dict(lr=0.1, batch=10, c=1.0, xi=0.9),
        "agem": dict(lr=0.1, batch=10, memory_batch=128),
        "lwf": dict(lr=0.03, batch=10, alpha=1.0, wd_reg=5e-4),
    },
    "der-permuted-mnist": {
        "naive": dict(lr=0.2, batch=128),
        "online-ewc": dict(lr=0.1, batch=128, e_lambda=0.7, gamma=1.0),
        "si": dict(lr=0.1, batch=128, c=0.5, xi=1.0),
        "agem": dict(lr=0.1, batch=128, memory_batch=128),
    },
    "der-rotated-mnist": {
        "naive": dict(lr=0.2, batch=128),
        "online-ewc": dict(lr=0.1, batch=128, e_lambda=0.7, gamma=1.0),
        "si": dict(lr=0.1, batch=128, c=1.0, xi=1.0),
        "agem": dict(lr={200: 0.1, 500: 0.3}, batch=128, memory_batch=128),
    },
}


def mnist_mlp():
    net = nn.Sequential(
        nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
        nn.Linear(100, 10),
    )  # fmt: skip
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def run(
    stream, strategy, setting, seed, *, weighted=True, clip=True, memory=200,
    begin_task=True,
):  # fmt: skip
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    net = mnist_mlp()
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=setting["lr"])
    anchor = importance = None
    start = flat(params).detach().clone()  # SI's checkpoint
    buffer_X, buffer_y = [], []  # A-GEM's memory
    old_logits = None  # LwF's targets
    for k in range(stream.n_tasks):
        X, y = (torch.as_tensor(a) for a in stream.task(k))
        y = y.long()
        omega = torch.zeros_like(start)
        if strategy == "lwf":
            classes = [torch.as_tensor(c).long() for c in stream.task_classes]
            seen = torch.cat(classes[: k + 1] if begin_task else classes)
            old = torch.cat(classes[:k]) if begin_task and k else None
            if old is not None:
                old_logits = lwf_begin_task(net, X, y, classes[k], setting, rng)
        order = torch.as_tensor(rng.permutation(len(y)))
        for i in range(0, len(y), setting["batch"]):
            rows = order[i : i + setting["batch"]]
            opt.zero_grad()
            if strategy == "lwf":
                targets = None if old is None else old_logits[rows][:, old]
                loss = lwf_loss(
                    net(X[rows]), y[rows], params, seen, old, targets, setting
                )
            else:
                loss = F.cross_entropy(net(X[rows]), y[rows])
            if importance is not None:
                scale = setting.get("e_lambda", setting.get("c"))
                loss = loss + scale * (importance * (flat(params) - anchor) ** 2).sum()
            loss.backward()
            if strategy == "agem" and buffer_X:
                agem_project(net, params, buffer_X, buffer_y, setting, rng)
            if strategy == "si" and clip:
                nn.utils.clip_grad_value_(params, 1)
            opt.step()
            if strategy == "si":
                omega += setting["lr"] * flat([p.grad for p in params]) ** 2
        theta = flat(params).detach().clone()
        if strategy == "agem":
            keep = torch.as_tensor(rng.permutation(len(y))[: memory // stream.n_tasks])
            buffer_X.append(X[keep])
            buffer_y.append(y[keep])
        if strategy == "online-ewc":
            fisher = per_sample_fisher(net, X, y, weighted) / len(y)
            gamma = setting["gamma"]
            importance = fisher if importance is None else gamma * importance + fisher
            anchor = theta
        elif strategy == "si":
            new = omega / ((theta - start) ** 2 + setting["xi"])
            importance = new if importance is None else importance + new
            anchor = start = theta
    return scores(net, stream)


def positions(y, classes):
    """The index of each label of ``y`` in ``classes``."""
    return (y[:, None] == classes[None]).long().argmax(1)


def lwf_loss(logits, y, params, seen, old, targets, setting):
    """Mammoth's LwF loss; ``smooth(softmax(z), 2)`` is ``softmax(z / 2)``."""
    loss = F.cross_entropy(logits[:, seen], positions(y, seen))
    if old is not None:
        soft = F.softmax(targets / 2, 1) * F.log_softmax(logits[:, old] / 2, 1)
        loss = loss - setting["alpha"] * soft.sum(1).mean()
    return loss + setting["wd_reg"] * flat(params).square().sum()


def lwf_begin_task(net, X, y, new, setting, rng):
    """Train the output layer alone one epoch on ``new``'s outputs; the logits after."""
    head = net[-1]
    opt = torch.optim.SGD(head.parameters(), lr=setting["lr"])
    order = torch.as_tensor(rng.permutation(len(y)))
    for i in range(0, len(y), setting["batch"]):
        rows = order[i : i + setting["batch"]]
        opt.zero_grad()
        with torch.no_grad():
            features = net[:-1](X[rows])
        F.cross_entropy(head(features)[:, new], positions(y[rows], new)).backward()
        opt.step()
    with torch.no_grad():
        return net(X)


def agem_project(net, params, buffer_X, buffer_y, setting, rng):
    """Replace the gradient by its projection off the memory's, if they conflict."""
    g = flat([p.grad for p in params])
    Xm, ym = torch.cat(buffer_X), torch.cat(buffer_y)
    rows = torch.as_tensor(rng.permutation(len(ym))[: setting["memory_batch"]])
    ref = flat(torch.autograd.grad(F.cross_entropy(net(Xm[rows]), ym[rows]), params))
    dot = g @ ref
    if dot < 0:
        g = g - dot / (ref @ ref) * ref
        offset = 0
        for p in params:
            p.grad.copy_(g[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def per_sample_fisher(net, X, y, weighted, chunk=10_000):
    """Sum over samples of ``[p(y|x)] * (d log p(y|x) / d theta)^2``, flat.

    Exact per-sample squares for a stack of linear layers: a sample's weight
    gradient is ``delta a^T``, so the sum of its squares is
    ``(w delta^2)^T a^2`` (``delta`` the gradient at the layer's output).
    """
    layers = [m for m in net if isinstance(m, nn.Linear)]
    sums = [torch.zeros_like(p) for p in net.parameters()]
    for i in range(0, len(y), chunk):
        h, inputs, outputs = X[i : i + chunk], [], []
        for m in net:
            if isinstance(m, nn.Linear):
                inputs.append(h.detach())
                h = m(h)
                outputs.append(h)
            else:
                h = m(h)
        log_p = F.log_softmax(h, 1).gather(1, y[i : i + chunk, None])[:, 0]
        deltas = torch.autograd.grad(log_p.sum(), outputs)
        w = log_p.detach().exp() if weighted else torch.ones_like(log_p)
        for k, (a, d) in enumerate(zip(inputs, deltas, strict=True)):
            d2 = w[:, None] * d.square()
            sums[2 * k] += d2.T @ a.square()
            sums[2 * k + 1] += d2.sum(0)
    assert len(sums) == 2 * len(layers)
    return flat(sums)


@torch.no_grad()
def scores(net, stream):
    X, y = torch.as_tensor(stream.X_test), torch.as_tensor(stream.y_test).long()
    logits, t = net(X), stream.t_test
    class_il = np.mean(
        [(logits[t == k].argmax(1) == y[t == k]).float().mean().item() for k in
         range(stream.n_tasks)]
    )  # fmt: skip
    task_il = None
    if stream.task_classes is not None:
        accs = []
        for k, classes in enumerate(stream.task_classes):
            cls = torch.as_tensor(np.asarray(classes)).long()
            pred = cls[logits[t == k][:, cls].argmax(1)]
            accs.append((pred == y[t == k]).float().mean().item())
        task_il = float(np.mean(accs))
    return float(class_il), task_il


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="der-permuted-mnist", choices=SETTINGS)
    parser.add_argument("--strategy", default="si", choices=SETTINGS["seq-mnist"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stream-seed", type=int, default=None)
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--memory-size", type=int, default=200)
    parser.add_argument("--unweighted", action="store_true")
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--no-begin-task", action="store_true")
    args = parser.parse_args()
    if args.strategy not in SETTINGS[args.stream]:
        parser.error(f"--strategy {args.strategy} is run on seq-mnist only.")
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    streams = seed_streams(
        dict(name=args.stream, data_home=args.data_home), seeds, args.stream_seed
    )
    setting = dict(SETTINGS[args.stream][args.strategy])
    if isinstance(setting["lr"], dict):
        setting["lr"] = setting["lr"][args.memory_size]
    results = []
    for stream, seed in zip(streams, seeds, strict=True):
        begin = time.perf_counter()
        class_il, task_il = run(
            stream, args.strategy, setting, seed,
            weighted=not args.unweighted, clip=not args.no_clip,
            memory=args.memory_size, begin_task=not args.no_begin_task,
        )  # fmt: skip
        results.append((class_il, task_il))
        extra = "" if task_il is None else f", task-IL {100 * task_il:.2f}"
        took = time.perf_counter() - begin
        print(f"seed {seed}: {100 * class_il:.2f}{extra} ({took:.0f} s)", flush=True)
    for name, column in zip(
        ("class-IL", "task-IL"), zip(*results, strict=True), strict=True
    ):
        if column[0] is not None:
            values = 100 * np.array(column)
            print(f"{name}: {values.mean():.2f} +- {values.std():.2f}")


if __name__ == "__main__":
    main()
