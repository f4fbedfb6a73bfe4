"""GDumb on split MNIST in a hand-written PyTorch loop, as its authors' code runs it.

What drimpossible/GDumb's ``src/main.py`` does for ``scripts/replicate.sh``'s
MNIST lines (``--memory_size M --num_passes 128 --model MLP --width 100``),
with torch and numpy only (MNIST read by ``skcl.datasets.fetch_mnist``): the
memory is the first ``M // 10`` training samples of each class in the order of
``np.argsort`` of the labels (``classwise_split``); the MLP's every layer is a
bias-free ``Linear`` and ``BatchNorm1d`` (eps 1e-6), ReLU after the hidden
ones; one training on the memory, 128 passes in shuffled batches of 16, SGD
(momentum 0.9, weight decay 1e-6), gradient norm clipped to 10, lr 0.005 for
the first pass, 0.05 for the second, then ``CosineAnnealingWarmRestarts(T_0=1,
T_mult=2, eta_min=5e-4)`` stepped once a pass; each image normalised (0.1307,
0.3081) after a random crop of its 4-pixel black padding; the test accuracy
after each pass, and its best. ``--half`` trains and tests in float16, as their
``model.half()``. numpy's default argsort is not stable: which samples it puts
first depends on the numpy version and the CPU; ``--memory-order file`` takes
each class's first samples in file order instead (``skcl``'s
``benchmarks/gdumb_mnist.py --memory first``).

    python benchmarks/gdumb_reference.py --data-home ../shared/data --seeds 3
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from skcl.datasets import fetch_mnist

MEAN, STD = 0.1307, 0.3081


def _mlp(width=100):
    def block(n_in, n_out, relu=True):
        layers = [
            torch.nn.Linear(n_in, n_out, bias=False),
            torch.nn.BatchNorm1d(n_out, eps=1e-6),
        ]
        return layers + [torch.nn.ReLU()] * relu

    return torch.nn.Sequential(
        torch.nn.Flatten(), *block(784, width), *block(width, width),
        *block(width, 10, relu=False),
    )  # fmt: skip


def _crop(images, generator):
    """Pad each 28 x 28 image by 4 black pixels and crop it back at random."""
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (len(images), 2), generator=generator)
    return torch.stack(
        [padded[i, :, r : r + 28, c : c + 28] for i, (r, c) in enumerate(offsets)]
    )


def run(data, memory_size, seed, passes, half, memory_order="argsort"):
    X, y, X_test, y_test = data
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    by_class = np.argsort(y, kind="stable" if memory_order == "file" else None)
    rows = np.concatenate(
        [by_class[y[by_class] == c][: memory_size // 10] for c in range(10)]
    )
    X_mem, y_mem = X[rows], torch.from_numpy(y[rows])
    dtype = torch.float16 if half else torch.float32
    net = _mlp().to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-6)
    schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=1, T_mult=2, eta_min=5e-4
    )
    X_test = ((X_test - MEAN) / STD).to(dtype)
    accuracy = []
    start = time.perf_counter()
    for epoch in range(passes):
        if epoch <= 1:
            for group in opt.param_groups:
                group["lr"] = 0.005 if epoch == 0 else 0.05
        else:
            schedule.step()
        net.train()
        order = torch.randperm(len(y_mem), generator=generator)
        for i in range(0, len(order), 16):
            b = order[i : i + 16]
            inputs = ((_crop(X_mem[b], generator) - MEAN) / STD).to(dtype)
            loss = F.cross_entropy(net(inputs), y_mem[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
        net.eval()
        with torch.no_grad():
            correct = net(X_test).argmax(1) == y_test
        accuracy.append(100 * float(correct.float().mean()))
    return max(accuracy), accuracy[-1], time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--memory-sizes", default="300,500")
    parser.add_argument("--passes", type=int, default=128)
    parser.add_argument("--half", action="store_true")
    parser.add_argument(
        "--memory-order", choices=("argsort", "file"), default="argsort"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, X_test, y, y_test = fetch_mnist(
        args.data_home, download_if_missing=False, return_X_y=True
    )
    data = (
        torch.from_numpy(X).reshape(-1, 1, 28, 28),
        y,
        torch.from_numpy(X_test).reshape(-1, 1, 28, 28),
        torch.from_numpy(y_test),
    )
    for memory_size in map(int, args.memory_sizes.split(",")):
        scores = [
            run(data, memory_size, seed, args.passes, args.half, args.memory_order)
            for seed in range(args.seeds)
        ]
        best, last, seconds = np.array(scores).T
        print(
            f"memory {memory_size} ({args.memory_order} order"
            f"{', float16' if args.half else ''}): best over "
            f"passes {best.mean():.1f} +- {best.std():.1f}, last pass "
            f"{last.mean():.1f} +- {last.std():.1f} (best "
            f"{', '.join(f'{b:.2f}' for b in best)}; last "
            f"{', '.join(f'{v:.2f}' for v in last)}; {seconds.mean():.0f} s per seed)",
            flush=True,
        )


if __name__ == "__main__":
    main()
