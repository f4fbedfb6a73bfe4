"""Runs on the plasticity streams: online accuracy, and forgetting where it is cheap.

Each seed records the online accuracy of every training batch
(:class:`~skcl.callbacks.PrequentialScore`). The strategies of ``TASK_FREE``
train without task ids (``partial_fit(X, y)``, task after task, as the
paper's methods run); the others are told each task. After each task the
network is scored on that task's held-out images and on the previous
task's, and after the last on every task: the entries of the accuracy
matrix that average accuracy, backward transfer, one-step backward
transfer and learning accuracy read (the whole matrix of 500 tasks would
cost 125,000 scorings).
"""

import time

import numpy as np

from .._classifier import ContinualClassifier
from .._engine import fit_together
from ..callbacks import PrequentialScore
from ..metrics import (
    average_accuracy,
    backward_transfer,
    learning_accuracy,
    one_step_backward_transfer,
    online_accuracy,
    prequential_scores,
    total_online_accuracy,
)
from ._plasticity_presets import TASK_FREE
from ._results import diverged_result

# The mean online accuracy of the first and the last WINDOW tasks.
WINDOW = 10
PLASTICITY_METRICS = (
    "total_online_accuracy",
    "first_online_accuracy",
    "last_online_accuracy",
    "average_accuracy",
    "backward_transfer",
    "one_step_backward_transfer",
)
# Each metric's header in the text table and in Markdown (with fewer than 10
# tasks, the first and last windows hold them all).
HEADERS = {
    "total_online_accuracy": ("online acc.", "total online accuracy"),
    "first_online_accuracy": ("first 10", "first 10 tasks (online)"),
    "last_online_accuracy": ("last 10", "last 10 tasks (online)"),
    "average_accuracy": ("accuracy", "average accuracy"),
    "backward_transfer": ("BWT", "backward transfer"),
    "one_step_backward_transfer": ("1-step BWT", "one-step BWT"),
}


def run_plasticity_seeds(streams, strategy, params, seeds, *, progress=None):
    """Train ``strategy`` with each of ``seeds`` on its plasticity stream.

    As :func:`~skcl._benchmark._runner.run_seeds_together` (stacked where
    the engine can, each seed on its own stream), with the plasticity
    metrics. Each result holds the per-task online accuracy
    (``online_accuracy``), its mean over the run and over the first and
    last ``min(10, n_tasks)`` tasks, the scored entries of the accuracy
    matrix (``R_diagonal``, ``R_one_step``: ``R[i + 1, i]``, ``R_final``),
    the metrics computed from them, and ``task_free``.
    """
    task_free = strategy in TASK_FREE
    clfs = {
        seed: ContinualClassifier(
            **params,
            classes=stream.classes,
            callbacks=[PrequentialScore(warn=False)],
            random_state=seed,
        )
        for stream, seed in zip(streams, seeds, strict=True)
    }
    stream_of = dict(zip(seeds, streams, strict=True))
    n_tasks = streams[0].n_tasks
    seconds, failed, reasons = dict.fromkeys(seeds, 0.0), {}, set()
    batches = {seed: [] for seed in seeds}
    diagonal = {seed: [] for seed in seeds}
    one_step = {seed: [] for seed in seeds}
    for k in range(n_tasks):
        alive = [seed for seed in seeds if seed not in failed]
        Xs, ys = zip(*[stream_of[seed].task(k) for seed in alive], strict=True)
        ts = [np.full(len(y), 0 if task_free else k) for y in ys]
        start = time.perf_counter()
        outcomes, reason = fit_together(
            [clfs[seed] for seed in alive], Xs, ys, ts, partial=True, own_data=True
        )
        elapsed = (time.perf_counter() - start) / len(alive)
        reasons.add(reason)
        for seed, outcome in zip(alive, outcomes, strict=True):
            if isinstance(outcome, FloatingPointError):
                failed[seed] = (k, outcome)
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            clf, stream = clfs[seed], stream_of[seed]
            seconds[seed] += elapsed
            batches[seed].append(len(prequential_scores(clf)[0]))
            diagonal[seed].append(clf.score(*stream.test(k)))
            if k > 0:
                one_step[seed].append(clf.score(*stream.test(k - 1)))
        if progress is not None:
            progress()
    results = []
    for seed in seeds:
        if seed in failed:
            results.append(
                diverged_result(strategy, seed, *failed[seed], PLASTICITY_METRICS)
            )
            continue
        clf, stream = clfs[seed], stream_of[seed]
        final = [clf.score(*stream.test(i)) for i in range(n_tasks)]
        scores, _ = prequential_scores(clf)
        # Task of each batch, from the count of batches after each task.
        task_of = np.repeat(np.arange(n_tasks), np.diff([0, *batches[seed]]))
        curve = online_accuracy(scores, task_of)
        R = _scored_matrix(diagonal[seed], one_step[seed], final)
        window = min(WINDOW, n_tasks)
        results.append(
            dict(
                strategy=strategy,
                seed=seed,
                R=None,
                seconds=seconds[seed],
                diverged=False,
                diverged_task=None,
                error=None,
                task_free=task_free,
                total_online_accuracy=total_online_accuracy(scores),
                first_online_accuracy=float(curve[:window].mean()),
                last_online_accuracy=float(curve[-window:].mean()),
                average_accuracy=average_accuracy(R),
                backward_transfer=backward_transfer(R),
                one_step_backward_transfer=one_step_backward_transfer(R),
                learning_accuracy=learning_accuracy(R),
                online_accuracy=curve.tolist(),
                R_diagonal=diagonal[seed],
                R_one_step=one_step[seed],
                R_final=final,
            )
        )
    reasons.discard(None)
    return results, (sorted(reasons)[0] if reasons else None)


def _scored_matrix(diagonal, one_step, final):
    """The accuracy matrix with the scored entries (0 where not scored: no
    metric computed from it reads those)."""
    n = len(diagonal)
    R = np.zeros((n, n))
    R[np.arange(n), np.arange(n)] = diagonal
    R[np.arange(1, n), np.arange(n - 1)] = one_step
    R[-1] = final
    return R
