"""Penalty strength sweep: the implicit and the explicit step over decades of lam.

Five permuted tasks of scikit-learn's digits (the embedded stream of
``skcl benchmark``), MLP 64-100-100-10, batch size 10, three epochs per task,
SGD lr 0.05 with momentum 0.9 (``--optimizer adam``: Adam, lr 1e-3). Each of
L2, L2 Init, EWC (separate and online), SI and MAS at each ``lam`` of
``--lams``, with ``penalty_step="implicit"`` and ``"explicit"``, over
``--seeds`` seeds (each its own permutations and split). Prints, per penalty,
step and ``lam``: the runs that diverged, average accuracy and forgetting
(mean over the seeds that trained), and, after training, the largest distance
of a parameter from the penalties' centre among the coordinates whose
precision ``lam * w`` is at least 1, and the fraction of the coordinates with
a positive precision that lie within 1e-3 of it. Writes ``results.json`` and
``forgetting_vs_lambda.png`` to ``--output``.

    python benchmarks/penalty_strength.py --output results/penalty-strength
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed

from skcl import ContinualClassifier
from skcl.datasets import load_digits_stream
from skcl.metrics import accuracy_matrix, average_accuracy, forgetting
from skcl.penalties import EWC, L2, MAS, SI, L2Init

PENALTIES = {
    "l2": L2,
    "l2init": L2Init,
    "ewc": EWC,
    "online-ewc": lambda lam: EWC(lam=lam, mode="online"),
    "si": SI,
    "mas": MAS,
}
OPTIMIZERS = {
    "sgd": {"optimizer": torch.optim.SGD, "lr": 0.05, "momentum": 0.9},
    "adam": {"optimizer": torch.optim.Adam, "lr": 1e-3},
}


def centre_distance(clf):
    """Return the largest |theta - c| where lam * w >= 1 and the fraction within
    1e-3 of c where lam * w > 0, for the penalty's (single) quadratic."""
    form = clf.penalty_.quadratic(clf.net_)
    if form is None:
        return None, None
    centres, weights, _ = form
    params = [p.detach() for p in clf.module_.parameters()]
    weights = weights or [torch.ones_like(p) for p in params]
    lam = clf.penalty_.lam
    largest, close, positive = 0.0, 0, 0
    for p, c, w in zip(params, centres, weights, strict=True):
        distance = (p - c).abs()
        strong = lam * w >= 1
        if strong.any():
            largest = max(largest, distance[strong].max().item())
        held = lam * w > 0
        positive += int(held.sum())
        close += int((distance[held] <= 1e-3).sum())
    return largest, close / max(positive, 1)


def run(name, lam, step, optimizer, seed):
    torch.set_num_threads(1)
    X_tr, X_te, y_tr, y_te, t_tr, t_te = load_digits_stream(
        "permuted", n_tasks=5, random_state=seed
    )
    clf = ContinualClassifier(
        penalty=PENALTIES[name](lam=lam),
        penalty_step=step,
        batch_size=10,
        max_epochs=3,
        module__hidden_sizes=(100, 100),
        random_state=seed,
        **OPTIMIZERS[optimizer],
    )
    record = {"penalty": name, "lam": lam, "step": step, "seed": seed}
    start = time.perf_counter()
    try:
        clf.fit(X_tr, y_tr, task_id=t_tr)
    except FloatingPointError as error:
        return {**record, "diverged": str(error).split(":")[0]}
    R = accuracy_matrix(clf, X_te, y_te, t_te)
    largest, within = centre_distance(clf)
    return {
        **record,
        "diverged": None,
        "accuracy": average_accuracy(R),
        "forgetting": forgetting(R),
        "largest_distance": largest,
        "fraction_within_1e-3": within,
        "seconds": time.perf_counter() - start,
    }


def summarize(records):
    rows = {}
    for r in records:
        rows.setdefault((r["penalty"], r["step"], r["lam"]), []).append(r)
    table = []
    for (name, step, lam), runs in rows.items():
        trained = [r for r in runs if r["diverged"] is None]
        row = {
            "penalty": name,
            "step": step,
            "lam": lam,
            "runs": len(runs),
            "diverged": len(runs) - len(trained),
        }
        for key in ("accuracy", "forgetting", "largest_distance"):
            values = [r[key] for r in trained if r[key] is not None]
            row[key] = float(np.mean(values)) if values else math.nan
        within = [r["fraction_within_1e-3"] for r in trained]
        row["fraction_within_1e-3"] = min(within) if within else math.nan
        table.append(row)
    return table


def print_table(table):
    print(
        f"{'penalty':<11} {'step':<9} {'lam':>7} {'diverged':>8} {'accuracy':>8} "
        f"{'forget.':>7} {'max |theta-c|':>13} {'within 1e-3':>11}"
    )
    for r in table:
        print(
            f"{r['penalty']:<11} {r['step']:<9} {r['lam']:>7.0e} "
            f"{r['diverged']:>4}/{r['runs']:<3} {r['accuracy']:>8.3f} "
            f"{r['forgetting']:>7.3f} {r['largest_distance']:>13.2e} "
            f"{r['fraction_within_1e-3']:>11.3f}"
        )


def plot(table, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(PENALTIES)
    fig, axes = plt.subplots(
        2, 3, figsize=(11, 6), sharex=True, sharey=True, layout="constrained"
    )
    for ax, name in zip(axes.flat, names, strict=True):
        for step, style in (("implicit", "o-"), ("explicit", "s--")):
            rows = sorted(
                (r for r in table if r["penalty"] == name and r["step"] == step),
                key=lambda r: r["lam"],
            )
            lams = [r["lam"] for r in rows if not r["diverged"]]
            values = [r["forgetting"] for r in rows if not r["diverged"]]
            (line,) = ax.plot(lams, values, style, label=f"{step} step")
            broken = [r["lam"] for r in rows if r["diverged"]]
            if broken:
                ax.plot(
                    broken,
                    [1.02] * len(broken),
                    "x",
                    color=line.get_color(),
                    markersize=8,
                    label=f"{step} step: diverged (on a seed or more)",
                )
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_ylim(-0.05, 1.08)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("lam")
    for ax in axes[:, 0]:
        ax.set_ylabel("forgetting")
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=4)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lams", default="1,1e1,1e2,1e3,1e4,1e5,1e6,1e7,1e8")
    parser.add_argument("--penalties", default=",".join(PENALTIES))
    parser.add_argument("--steps", default="implicit,explicit")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("penalty_strength"))
    args = parser.parse_args(argv)
    lams = [float(v) for v in args.lams.split(",")]
    jobs = [
        (name, lam, step, args.optimizer, seed)
        for name in args.penalties.split(",")
        for step in args.steps.split(",")
        for lam in lams
        for seed in range(args.seeds)
    ]
    records = Parallel(n_jobs=args.n_jobs)(delayed(run)(*job) for job in jobs)
    table = summarize(records)
    print_table(table)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(
        json.dumps({"runs": records, "summary": table}, indent=1)
    )
    optimizer = OPTIMIZERS[args.optimizer]
    title = (
        f"5 permuted digits tasks, {optimizer['optimizer'].__name__} "
        f"lr {optimizer['lr']}"
        + (f", momentum {optimizer['momentum']}" if "momentum" in optimizer else "")
        + f", {args.seeds} seeds"
    )
    plot(table, args.output / "forgetting_vs_lambda.png", title)
    print(f"wrote {args.output / 'results.json'}, forgetting_vs_lambda.png")


if __name__ == "__main__":
    main()
