"""The L2 Init paper's Table 2 protocol as a hand-written loop, for comparison.

Kumar, Marklund & Van Roy (CoLLAs 2025), Table 2: Permuted MNIST, 20 tasks,
backward transfer, one-step backward transfer and total online accuracy of
L2 Init, EWC and L2 Init + EWC. This loop follows the authors' code
(skumar9876/L2_Init at 3f86d26: ``main.py``, ``agents/agents.py``,
``environments/permuted_mnist.py``) step by step, with no skcl in the
training: pixels normalized to [-1, 1]; per task a new pixel permutation
(none for the first) of 10,000 training images drawn anew, 625 steps of
batch 16 (a batch that would reach the end of the 10,000 starts a new
shuffled pass); Adam; the penalties in the loss (``l2_weight * 0.5 *
sum (theta - theta_0)^2``, ``ewc_weight * 0.5 * sum F (theta - theta*)^2``
with the Fisher and the anchor of the latest task only, the Fisher the mean
squared per-sample gradient of log p(y|x) on 992 of the task's 1,000 test
images, or 1 with ``--no-fisher``); each task scored on the same 1,000 test
images, permuted as the task, in batches of 16 (992 images). It prints the
means over seeds, in points, as ``skcl benchmark`` does for
``--stream plasticity-permuted-mnist --n-tasks 20``
(docs/benchmarks.md, "The L2 Init paper's Table 2").

    python benchmarks/l2init_table2_reference.py --seeds 3
    python benchmarks/l2init_table2_reference.py --strategies ewc --ewc-lam 10
"""

import argparse
import os

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from skcl.datasets import fetch_mnist

BATCH, STEPS, SAMPLES, TEST = 16, 625, 10_000, 1000


def mlp():
    layers = [nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(100, 10))


def accuracy(model, X, y):
    """The authors' ``compute_acc``: the mean of whole batches' accuracies."""
    n = len(X) // BATCH * BATCH
    with torch.no_grad():
        return (model(X[:n]).argmax(1) == y[:n]).float().mean().item()


def fisher(model, X, y):
    """Mean squared per-sample gradient of log p(y|x) on 992 of 1,000 samples."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def log_p(p, x, label):
        out = functional_call(model, p, (x[None],))
        return torch.log_softmax(out, 1)[0].gather(0, label[None])[0]

    n = (len(X) - BATCH) // BATCH * BATCH + BATCH  # range(0, 1000 - 16, 16)
    grads = vmap(grad(log_p), in_dims=(None, 0, 0))(params, X[:n], y[:n])
    return {k: (g**2).mean(0) for k, g in grads.items()}


def run(strategy, seed, args, data):
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    X, y, X_test, y_test = data
    test_rows = rng.permutation(len(X_test))[:TEST]
    X_test, y_test = X_test[test_rows], y_test[test_rows]
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    star, F = None, None
    l2 = args.l2_weight if "l2init" in strategy else 0.0
    ewc = args.ewc_lam if "ewc" in strategy else 0.0
    online, R_diag, R_next, tests = [], [], [], []
    for task in range(args.n_tasks):
        pixels = np.arange(784) if task == 0 else rng.permutation(784)
        rows = rng.permutation(len(X))[:SAMPLES]
        X_task, y_task = X[rows][:, pixels], y[rows]
        tests.append((X_test[:, pixels], y_test))
        index = 0
        for _ in range(STEPS):
            if index + BATCH >= SAMPLES:
                index = 0
            if index == 0:
                order = rng.permutation(SAMPLES)
                X_task, y_task = X_task[order], y_task[order]
            xb, yb = X_task[index : index + BATCH], y_task[index : index + BATCH]
            index += BATCH
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            for name, param in model.named_parameters():
                if l2:
                    loss = loss + l2 * 0.5 * ((param - init[name]) ** 2).sum()
                if ewc and star is not None:
                    weight = F[name] if F is not None else 1.0
                    loss = loss + ewc * 0.5 * (weight * (param - star[name]) ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            online.append((logits.argmax(1) == yb).float().mean().item())
        R_diag.append(accuracy(model, *tests[task]))
        if task > 0:
            R_next.append(accuracy(model, *tests[task - 1]))
        if ewc:
            star = {k: v.detach().clone() for k, v in model.named_parameters()}
            if args.fisher:
                F = fisher(model, *tests[task])
    final = [accuracy(model, *t) for t in tests]
    return (
        100 * np.mean(np.subtract(final[:-1], R_diag[:-1])),
        100 * np.mean(np.subtract(R_next, R_diag[:-1])),
        100 * np.mean(online),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="l2init,ewc,l2init+ewc")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-tasks", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l2-weight", type=float, default=1e-2)
    parser.add_argument("--ewc-lam", type=float, default=100.0)
    parser.add_argument("--no-fisher", dest="fisher", action="store_false")
    parser.add_argument(
        "--data-home", default=os.environ.get("SKCL_DATA", "../shared/data")
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mnist = fetch_mnist(args.data_home, cache=False)
    data = [
        torch.as_tensor(a)
        for a in (
            2 * mnist.X_train - 1,
            mnist.y_train,
            2 * mnist.X_test - 1,
            mnist.y_test,
        )
    ]
    print(f"{'strategy':<12} {'BWT':>7} {'1-step':>7} {'online':>7}  (points)")
    for strategy in args.strategies.split(","):
        rows = np.array([run(strategy, s, args, data) for s in range(args.seeds)])
        mean, std = rows.mean(0), rows.std(0)
        cells = " ".join(f"{m:5.1f}±{s:.1f}" for m, s in zip(mean, std, strict=True))
        print(f"{strategy:<12} {cells}", flush=True)


if __name__ == "__main__":
    main()
