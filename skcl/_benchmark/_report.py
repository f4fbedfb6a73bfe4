"""Tables, files and plots of a benchmark's results."""

import csv
import json
from pathlib import Path

import numpy as np

from ._plasticity_report import write_online_plots
from ._plasticity_runner import HEADERS, PLASTICITY_METRICS

METRICS = ("average_accuracy", "forgetting", "backward_transfer", "learning_accuracy")
# Scores some streams add (seq-mnist's task-incremental accuracy).
_OPTIONAL = ("task_il_accuracy",)
_HEADERS = ("accuracy", "forgetting", "BWT", "learning acc.", "train s")
_LONG_HEADERS = (
    "average accuracy",
    "forgetting",
    "backward transfer",
    "learning accuracy",
    "train s",
)


def summarize(results, strategies):
    """Return one row per strategy: mean and std of each metric over seeds."""
    rows = []
    for strategy in strategies:
        runs = [r for r in results if r["strategy"] == strategy]
        row = {"strategy": strategy, "n_seeds": len(runs)}
        row["n_diverged"] = sum(r["diverged"] for r in runs)
        kept = [r for r in runs if not r["diverged"]] or runs
        optional = [k for k in _OPTIONAL if all(k in r for r in kept)]
        for key in (*_metrics(kept), *optional, "seconds"):
            values = np.array([r[key] for r in kept], dtype=float)
            row[key] = float(values.mean())
            row[f"{key}_std"] = float(values.std())
        rows.append(row)
    return rows


def _metrics(runs):
    """The plasticity streams' metrics, or the accuracy matrix's."""
    return PLASTICITY_METRICS if "total_online_accuracy" in runs[0] else METRICS


def _headers(rows, long):
    if rows and "total_online_accuracy" in rows[0]:
        return (*(HEADERS[k][long] for k in PLASTICITY_METRICS), "train s")
    return _LONG_HEADERS if long else _HEADERS


def format_table(rows):
    """Return the summary as an aligned text table (mean ± std over seeds).

    Runs that diverged are left out of the means and counted in the name; a
    strategy all of whose runs diverged shows ``-``. The training time is the
    mean over the seeds.
    """
    cells = [("strategy", *_headers(rows, False)), *_cells(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows):
    """Return the summary as a Markdown table, the cells of :func:`format_table`.

    ``docs/benchmarks.md`` quotes its tables in this form.
    """
    cells = [("strategy", *_headers(rows, True)), *_cells(rows)]
    lines = ["| " + " | ".join(line) + " |" for line in cells]
    lines.insert(1, "|" + "---|" * len(cells[0]))
    return "\n".join(lines)


def _cells(rows):
    for row in rows:
        diverged = row["n_diverged"]
        kept = row["n_seeds"] - diverged
        yield (
            row["strategy"] + (f" ({diverged} diverged)" if diverged else ""),
            *(
                "-"
                if not kept
                else f"{row[k]:.3f} ± {row[k + '_std']:.3f}"
                if kept > 1
                else f"{row[k]:.3f}"
                for k in _metrics([row])
            ),
            "-" if not kept else f"{row['seconds']:.1f}",
        )


def format_divergences(results, params):
    """Return what diverged, where and why, with what to change; "" if nothing.

    ``params`` maps each strategy to its estimator parameters, for the advice.
    """
    diverged = [r for r in results if r["diverged"]]
    if not diverged:
        return ""
    lines = ["Diverged runs (left out of the means; the errors are in results.json):"]
    for r in diverged:
        # The estimator's own advice names its parameters; the flags follow.
        reason = r["error"].split(" The estimator was restored")[0]
        lines.append(
            f"  {r['strategy']}, seed {r['seed']}, task {r['diverged_task']}: {reason}"
        )
    lines.append("To avoid it:")
    for strategy in dict.fromkeys(r["strategy"] for r in diverged):
        lines.append(f"  {strategy}: {_advice(params[strategy])}")
    return "\n".join(lines)


def _advice(params):
    options = [f"a lower --lr (now {params['lr']:g})"]
    penalty = params.get("penalty")
    if penalty is not None:
        options.append(f"a lower --lam (now {penalty.lam:g})")
        if params.get("penalty_step") == "explicit":
            options.append("--penalty-step implicit")
    return "try " + " or ".join(options)


def mean_matrices(results):
    """Mean and std over seeds of each sequential strategy's accuracy matrix.

    Returns a dict from strategy to ``{"n_seeds", "mean", "std"}`` (arrays),
    over the runs that did not diverge, the runs the table averages too.
    """
    matrices = {}
    for r in results:
        if r["R"] is not None and not r["strategy"].startswith("joint"):
            matrices.setdefault(r["strategy"], []).append(np.array(r["R"]))
    return {
        strategy: {"n_seeds": len(Rs), "mean": np.mean(Rs, 0), "std": np.std(Rs, 0)}
        for strategy, Rs in matrices.items()
    }


def format_environment(environment):
    """Return the line of the output that says what the scores depend on.

    ``environment`` is :func:`~skcl._benchmark._runner.environment`'s dict.
    """
    env = environment
    threads = env["torch_threads"]
    settings = "".join(f", {k}={v}" for k, v in env["kernel_settings"].items())
    return (
        f"skcl {env['skcl']}, torch {env['torch']}, scikit-learn {env['sklearn']}, "
        f"skorch {env['skorch']}, numpy {env['numpy']}, Python {env['python']}; "
        f"{env['cpu']}, {env['cores']} cores, {env['cpu_capability']} kernels, "
        f"{threads} torch thread{'s' * (threads != 1)}, {env['dtype']}{settings}"
    )


def write_files(results, rows, config, output, *, environment=None, seconds=None):
    """Write ``results.json`` and ``summary.csv`` and return their paths.

    ``results.json`` holds the configuration, the ``environment`` the scores
    depend on (versions, CPU, kernels, threads, dtype; see
    :func:`~skcl._benchmark._runner.environment`), ``wall_seconds`` (the run's
    wall time up to the table: loading, training and scoring), the summary
    rows, every run and, under ``matrices``, the mean and std over seeds of
    each strategy's accuracy matrix (those the heatmaps show).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    matrices = {
        strategy: {
            "n_seeds": m["n_seeds"],
            "mean": m["mean"].tolist(),
            "std": m["std"].tolist(),
        }
        for strategy, m in mean_matrices(results).items()
    }
    document = {
        "config": config,
        "environment": environment,
        "wall_seconds": seconds,
        "summary": rows,
        "matrices": matrices,
        "runs": results,
    }
    with open(output / "results.json", "w") as f:
        json.dump(_nan_to_none(document), f, indent=2, allow_nan=False)
    with open(output / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [output / "results.json", output / "summary.csv"]


def write_plots(results, rows, output, *, stream):
    """Plot the benchmark of the stream named ``stream``; return the paths.

    One heatmap per sequential strategy of its accuracy matrix averaged over
    the seeds (the std is in ``results.json``), titled with the numbers of the
    table; the forgetting curves of the same mean matrices, one panel per
    strategy; and ``summary.png``, average accuracy against forgetting with
    the std over seeds as error bars. On a plasticity stream, the online
    accuracy per task of each strategy instead (``online_accuracy.png``).
    """
    if rows and "total_online_accuracy" in rows[0]:
        return write_online_plots(results, output, stream=stream)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..metrics import AccuracyMatrixDisplay, TaskAccuracyDisplay

    output = Path(output)
    by_strategy = {row["strategy"]: row for row in rows}
    matrices = mean_matrices(results)
    paths = []

    def save(figure, name):
        figure.savefig(output / name, dpi=100)
        plt.close(figure)
        paths.append(output / name)

    for strategy, m in matrices.items():
        display = AccuracyMatrixDisplay.from_matrix(
            m["mean"], im_kw={"vmin": 0, "vmax": 1}
        )
        row = by_strategy[strategy]
        display.ax_.set_title(
            f"{strategy} on {stream}, {_seeds(row)}\n"
            f"accuracy {_cell(row, 'average_accuracy')}, "
            f"forgetting {_cell(row, 'forgetting')}",
            fontsize="medium",
        )
        save(display.figure_, f"accuracy_matrix_{strategy}.png")
    if matrices:
        display = TaskAccuracyDisplay.from_matrix(
            {strategy: m["mean"] for strategy, m in matrices.items()}
        )
        n_seeds = max(m["n_seeds"] for m in matrices.values())
        display.figure_.suptitle(
            f"Score on each task along {stream}, "
            + (f"mean of {n_seeds} seeds" if n_seeds > 1 else "1 seed")
        )
        save(display.figure_, "task_accuracy.png")
    finite = [row for row in rows if np.isfinite(row["average_accuracy"])]
    if finite:
        save(_summary_figure(plt, finite, stream), "summary.png")
    return paths


def _seeds(row):
    n = row["n_seeds"] - row["n_diverged"]
    text = f"mean of {n} seeds" if n > 1 else "1 seed"
    return text + (f" ({row['n_diverged']} diverged)" if row["n_diverged"] else "")


def _cell(row, key):
    if row["n_seeds"] - row["n_diverged"] > 1:
        return f"{row[key]:.3f} ± {row[key + '_std']:.3f}"
    return f"{row[key]:.3f}"


def _styles(n):
    """A colour and a marker for each of ``n`` strategies, no two alike.

    tab20's ten dark hues with circles, then its ten light ones with squares,
    then tab20b's and tab20c's twenty each with their own markers: twenty
    distinct colours, and where a light hue follows its dark one the marker
    tells them apart too.
    """
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].colors
    colors = [*tab20[0::2], *tab20[1::2]]
    colors += [*matplotlib.colormaps["tab20b"].colors]
    colors += [*matplotlib.colormaps["tab20c"].colors]
    markers = "osD^v<>ph*"
    return [
        (colors[k % len(colors)], markers[k // 10 % len(markers)]) for k in range(n)
    ]


def _summary_figure(plt, rows, stream):
    figure, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for row, (color, marker) in zip(rows, _styles(len(rows)), strict=True):
        ax.errorbar(
            row["forgetting"],
            row["average_accuracy"],
            xerr=row["forgetting_std"],
            yerr=row["average_accuracy_std"],
            fmt=marker,
            markersize=7,
            capsize=3,
            color=color,
            ecolor=color,
            markeredgecolor="black",
            markeredgewidth=0.5,
            label=row["strategy"],
        )
    n_seeds = max(row["n_seeds"] for row in rows)
    ax.set(
        xlabel="Forgetting (lower is better)",
        ylabel="Average accuracy (higher is better)",
        title=f"{stream}: mean ± std over {n_seeds} seed{'s' * (n_seeds > 1)}",
    )
    ax.grid(alpha=0.3)
    figure.legend(loc="outside right upper")
    return figure


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
