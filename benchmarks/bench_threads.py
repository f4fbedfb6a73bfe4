"""Training time with one torch thread against two, for a small and larger models.

Each measurement is a fresh process (torch's thread pool is set before any
work) that times one ``fit``: ``digits-mlp`` is the default benchmark's
network and regime (MLP 64-100-100-10, batch 10, 5 permuted-digits tasks x 3
epochs), ``mnist-mlp`` Stable SGD's Table 2 network (MLP 784-256-256-10,
batch 10) on 10,000 MNIST images, ``cnn`` skcl's ``CNN`` at batch 64 on the
same images. Two threads run with OpenMP's default wait policy and with
``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep instead of spinning). The runs
alternate, ``--repeats`` times; each figure is a median, with the machine's
1-minute load average while it ran (what else was running changes the
answer).

    python benchmarks/bench_threads.py --data-home ../shared/data/mnist
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, passive wait": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def train(model, data_home):
    import numpy as np

    from skcl import ContinualClassifier
    from skcl.datasets import fetch_mnist, load_digits_stream
    from skcl.modules import CNN

    if model == "digits-mlp":
        X, _, y, _, t, _ = load_digits_stream("permuted", n_tasks=5, random_state=0)
        params = dict(module__hidden_sizes=(100, 100), batch_size=10, max_epochs=3)
    else:
        X, _, y, _ = fetch_mnist(data_home, return_X_y=True)
        X, y, t = X[:10_000], y[:10_000], np.zeros(10_000, dtype=int)
        params = dict(module__hidden_sizes=(256, 256), batch_size=10, max_epochs=1)
        if model == "cnn":
            X = X.reshape(-1, 1, 28, 28)
            params = dict(module=CNN, batch_size=64, max_epochs=1)
    params.update(lr=0.05, momentum=0.8, random_state=0)
    # A first chunk pays the one-time costs (imports, kernels' first calls).
    warm = ContinualClassifier(**params)
    warm.partial_fit(X[:20], y[:20], task_id=0, classes=np.unique(y))
    start = time.perf_counter()
    ContinualClassifier(**params).fit(X, y, task_id=t)
    return time.perf_counter() - start


def measure(model, setting, data_home):
    threads, env = SETTINGS[setting]
    code = (
        "import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
        "from bench_threads import train; print(train(sys.argv[2], sys.argv[3]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(threads), model, data_home],
        env={**os.environ, **env},
        cwd=os.path.dirname(os.path.abspath(__file__)),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.split()[-1]), os.getloadavg()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--models", default="digits-mlp,mnist-mlp,cnn", help="comma-separated"
    )
    args = parser.parse_args()
    models = args.models.split(",")
    times = {(m, s): [] for m in models for s in SETTINGS}
    loads = {key: [] for key in times}
    for _ in range(args.repeats):
        for model in models:
            for setting in SETTINGS:
                seconds, load = measure(model, setting, args.data_home)
                times[model, setting].append(seconds)
                loads[model, setting].append(load)
    print(f"{os.cpu_count()} cores; medians of {args.repeats} runs")
    print("| model | setting | seconds | against 1 thread | load average |")
    print("|---|---|---|---|---|")
    for model in models:
        base = statistics.median(times[model, "1 thread"])
        for setting in SETTINGS:
            seconds = statistics.median(times[model, setting])
            low, high = min(loads[model, setting]), max(loads[model, setting])
            print(
                f"| {model} | {setting} | {seconds:.2f} | {seconds / base:.2f}x "
                f"| {low:.1f}-{high:.1f} |"
            )


if __name__ == "__main__":
    main()
