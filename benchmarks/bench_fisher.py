"""Time the diagonal Fisher / MAS engine against one batched forward+backward.

Run ``python benchmarks/bench_fisher.py`` from the repository root. One CPU
thread, random MNIST-shaped data (no download): an MLP 784-256-256-10 and a
small CNN (conv 1->16->32 on 28x28). Each timing is the best of ``--repeats``
runs, interleaved so that load from other processes hits all of them alike.
The per-sample loop runs on a subset and is extrapolated linearly.
"""

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

from skcl.penalties import output_norm_gradients, squared_gradients
from skcl.penalties._fisher import _cross_entropy, _loss_cotangents
from skcl.penalties._per_sample import per_sample_gradient_means


def mlp():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


def forward_backward(net, X, y, batch_size=None):
    net.zero_grad(set_to_none=True)
    step = len(X) if batch_size is None else batch_size
    for start in range(0, len(X), step):
        chunk = slice(start, start + step)
        F.cross_entropy(net(X[chunk]), y[chunk], reduction="sum").backward()


def per_sample_loop(net, X, y):
    net.eval()
    params = [p for p in net.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for n in range(len(X)):
        loss = F.cross_entropy(net(X[n : n + 1]), y[n : n + 1])
        for t, g in zip(total, torch.autograd.grad(loss, params), strict=True):
            t += g.square()
    return [t / len(X) for t in total]


def vmap_fallback(net, X, y):
    return per_sample_gradient_means(
        net, X, _loss_cotangents(_cross_entropy, y), reduction="square", fast=False
    )


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_times(cases, repeats):
    times = {name: float("inf") for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


def bench(label, net, X, y, *, chunk, whole_batch, subset, vmap_subset, repeats):
    n_params = sum(p.numel() for p in net.parameters())
    print(f"\n== {label}: {n_params:,} parameters, {len(X):,} samples ==")
    cases = {}
    if whole_batch:
        cases["forward+backward, one batch (sum loss)"] = lambda: forward_backward(
            net, X, y
        )
    cases[f"forward+backward, chunks of {chunk}"] = lambda: forward_backward(
        net, X, y, chunk
    )
    if whole_batch:
        cases["Fisher, empirical, one chunk"] = lambda: squared_gradients(
            net, X, y, batch_size=None
        )
    cases[f"Fisher, empirical, chunks of {chunk}"] = lambda: squared_gradients(
        net, X, y, batch_size=chunk
    )
    cases[f"Fisher, true (exact), chunks of {chunk}"] = lambda: squared_gradients(
        net, X, fisher="true", batch_size=chunk
    )
    cases[f"MAS importance, chunks of {chunk}"] = lambda: output_norm_gradients(
        net, X, batch_size=chunk
    )
    times = best_times(cases, repeats)
    scale = len(X) / vmap_subset
    fallback = best_times(
        {"": lambda: vmap_fallback(net, X[:vmap_subset], y[:vmap_subset])}, 2
    )[""]
    times[f"vmap fallback, empirical ({vmap_subset} samples x{scale:g})"] = (
        scale * fallback
    )
    scale = len(X) / subset
    start = time.perf_counter()
    loop = per_sample_loop(net, X[:subset], y[:subset])
    times[f"per-sample loop ({subset} samples x{scale:g}, extrapolated)"] = scale * (
        time.perf_counter() - start
    )
    base = next(iter(times.values()))
    for name, seconds in times.items():
        print(f"{name:<52s} {seconds * 1e3:10.1f} ms {seconds / base:8.2f}x")
    ours = squared_gradients(net, X[:subset], y[:subset])
    error = max(
        ((a - b).abs().max() / b.abs().max()).item()
        for a, b in zip(ours.values(), loop, strict=True)
    )
    print(f"max relative difference to the per-sample loop on the subset: {error:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{platform.platform()}"
    )
    print(
        f"CPU: {cpu_name()} ({os.cpu_count()} logical cores), torch threads: "
        f"{torch.get_num_threads()}, float32, best of {args.repeats} runs"
    )
    X = torch.rand(args.n_samples, 1, 28, 28)
    y = torch.randint(10, (args.n_samples,))
    common = {"chunk": args.chunk, "repeats": args.repeats}
    bench(
        "MLP 784-256-256-10",
        mlp(),
        X,
        y,
        whole_batch=True,
        subset=500,
        vmap_subset=1000,
        **common,
    )
    bench(
        "CNN conv 1-16-32 + linear",
        cnn(),
        X,
        y,
        whole_batch=False,
        subset=200,
        vmap_subset=500,
        **common,
    )


if __name__ == "__main__":
    main()
