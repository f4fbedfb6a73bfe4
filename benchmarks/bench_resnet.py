"""One epoch of the reduced ResNet-18 through skcl against a hand-written loop.

Issue 27's speed check: the reduced ResNet-18 of Split CIFAR-100 (width 20,
100 outputs) on random 32x32 colour images, Table 2's naive optimizer (SGD,
lr 0.01, momentum 0.8), batch 10 and 128, on 2,500 images by default (one
task of Split CIFAR-100). Both sides build the network and train one epoch
in the same process; the runs alternate and each figure is the median of
``--repeats`` runs. skcl's time is the whole ``fit`` call: input validation,
tensor conversion, building the network, and the engine's fixed work per
call (a check that the module's forward pass draws no random numbers, on a
copy and 2 images; a check that its outputs are finite, on one batch), which
weighs more the fewer the steps.
On the CPU it uses one torch thread; ``--device cuda`` runs both on a GPU.

    python benchmarks/bench_resnet.py
    python benchmarks/bench_resnet.py --device cuda --n-samples 50000
"""

import argparse
import platform
import time

import numpy as np
import torch

from skcl import ContinualClassifier
from skcl.modules import ReducedResNet18


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hand_loop(X, y, batch_size, device):
    """The loop a user writes: build, shuffle, index each batch, step."""
    start = time.perf_counter()
    X, y = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    torch.manual_seed(0)
    model = ReducedResNet18(input_shape=(3, 32, 32), output_dim=100).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.8)
    order = torch.randperm(len(X), device=device)
    for i in range(0, len(X), batch_size):
        index = order[i : i + batch_size]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
        loss.backward()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def skcl_fit(X, y, batch_size, device):
    start = time.perf_counter()
    ContinualClassifier(
        module=ReducedResNet18,
        lr=0.01,
        momentum=0.8,
        batch_size=batch_size,
        max_epochs=1,
        classes=np.arange(100),
        keep_snapshots=False,
        device=device,
        random_state=0,
    ).fit(X, y)
    _sync(device)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=2500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", type=float, default=1.05)
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(1)
    where = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, 1 thread"
    )
    print(f"{where}, torch {torch.__version__}, {args.n_samples} images 3x32x32")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(args.n_samples, 3, 32, 32)).astype(np.float32)
    y = rng.randint(0, 100, args.n_samples)
    # Warm up both paths (kernels, the first optimizer's imports).
    hand_loop(X[:256], y[:256], 128, args.device)
    skcl_fit(X[:256], y[:256], 128, args.device)
    print(f"{'batch':>6} {'hand loop':>10} {'skcl':>10} {'ratio':>7}")
    ratios = {}
    for batch_size in (10, 128):
        times = [[], []]
        for _ in range(args.repeats):
            times[0].append(hand_loop(X, y, batch_size, args.device))
            times[1].append(skcl_fit(X, y, batch_size, args.device))
        hand, ours = np.median(times[0]), np.median(times[1])
        ratios[batch_size] = ours / hand
        verdict = "ok" if ratios[batch_size] <= args.target else "OVER"
        print(
            f"{batch_size:>6} {hand:9.2f}s {ours:9.2f}s {ratios[batch_size]:6.3f}x"
            f"  (target <= {args.target:.2f}x: {verdict})"
        )
    return ratios


if __name__ == "__main__":
    main()
