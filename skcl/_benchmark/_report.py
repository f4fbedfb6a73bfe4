"""Tables, files and plots of a benchmark's results."""

import csv
import json
from pathlib import Path

import numpy as np

METRICS = ("average_accuracy", "forgetting", "backward_transfer", "learning_accuracy")
_HEADERS = ("accuracy", "forgetting", "BWT", "learning acc.", "train s")


def summarize(results, strategies):
    """Return one row per strategy: mean and std of each metric over seeds."""
    rows = []
    for strategy in strategies:
        runs = [r for r in results if r["strategy"] == strategy]
        row = {"strategy": strategy, "n_seeds": len(runs)}
        row["n_diverged"] = sum(r["diverged"] for r in runs)
        kept = [r for r in runs if not r["diverged"]] or runs
        for key in (*METRICS, "seconds"):
            values = np.array([r[key] for r in kept], dtype=float)
            row[key] = float(values.mean())
            row[f"{key}_std"] = float(values.std())
        rows.append(row)
    return rows


def format_table(rows):
    """Return the summary as an aligned text table (mean ± std over seeds).

    Runs that diverged are left out of the means and counted in the name; a
    strategy all of whose runs diverged shows ``-``.
    """
    cells = [("strategy", *_HEADERS)]
    for row in rows:
        diverged = row["n_diverged"]
        kept = row["n_seeds"] - diverged
        cells.append(
            (
                row["strategy"] + (f" ({diverged} diverged)" if diverged else ""),
                *(
                    "-"
                    if not kept
                    else f"{row[k]:.3f} ± {row[k + '_std']:.3f}"
                    if kept > 1
                    else f"{row[k]:.3f}"
                    for k in METRICS
                ),
                "-" if not kept else f"{row['seconds']:.1f}",
            )
        )
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


def write_files(results, rows, config, output):
    """Write ``results.json`` (every run), ``summary.csv`` and return their paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    document = {"config": config, "summary": rows, "runs": results}
    with open(output / "results.json", "w") as f:
        json.dump(_nan_to_none(document), f, indent=2, allow_nan=False)
    with open(output / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [output / "results.json", output / "summary.csv"]


def write_plots(results, strategies, output):
    """Plot each sequential strategy's first accuracy matrix and their task curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..metrics import AccuracyMatrixDisplay, TaskAccuracyDisplay

    output = Path(output)
    first = {}
    for r in results:
        if not r["strategy"].startswith("joint") and not r["diverged"]:
            first.setdefault(r["strategy"], np.array(r["R"]))
    paths = []
    for strategy in (s for s in strategies if s in first):
        display = AccuracyMatrixDisplay.from_matrix(first[strategy])
        display.ax_.set_title(strategy)
        path = output / f"accuracy_matrix_{strategy}.png"
        display.figure_.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(display.figure_)
        paths.append(path)
    if first:
        display = TaskAccuracyDisplay.from_matrix(first)
        path = output / "task_accuracy.png"
        display.figure_.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(display.figure_)
        paths.append(path)
    return paths


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
