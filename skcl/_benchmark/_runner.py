"""One run: a strategy with one seed on a stream, scored on the held-out tasks."""

import datetime
import os
import platform
import time

import numpy as np
import torch

from .._classifier import ContinualClassifier
from .._engine import fit_together
from ..metrics import (
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    forgetting,
    learning_accuracy,
)
from ._plasticity_runner import run_plasticity_seeds
from ._plasticity_streams import PlasticityStream
from ._report import METRICS
from ._results import diverged_result

_JOINT_CHUNK = 60_000
# Environment variables that change which float kernels run, hence the scores.
_KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")


def run_strategy(stream, strategy, params, seed, *, progress=None):
    """Train ``strategy`` on ``stream`` and return its scores.

    Sequential strategies see the tasks one after the other through
    ``partial_fit``. ``"joint"`` (the multi-task upper bound) trains once on the
    shuffled union of all tasks; ``"joint-budget"`` does so on as many samples
    as one task has, drawn from that union (the multi-task baseline of A-GEM's
    code, whose numbers Stable SGD's Table 2 reports). Their accuracy matrix
    is a single row, and their forgetting and backward transfer are zero by
    definition. On a plasticity stream the run is
    :func:`~skcl._benchmark._plasticity_runner.run_plasticity_seeds`'s.

    Parameters
    ----------
    stream : TaskStream
    strategy : str
    params : dict
        Estimator parameters (see ``_presets.strategy_params``).
    seed : int
    progress : callable or None
        Called after each task.

    Returns
    -------
    dict
        ``strategy``, ``seed``, ``R`` (list of rows), the four metrics, the
        training time in seconds, ``diverged``, and, for a run whose loss
        diverged (``diverged=True``, None scores), ``diverged_task`` (the
        index of the task it diverged in; 0 for the joint strategies) and
        ``error`` (the estimator's message); both are None otherwise.
    """
    if isinstance(stream, PlasticityStream):
        results, _ = run_plasticity_seeds(
            [stream], strategy, params, [seed], progress=progress
        )
        return results[0]
    where = {"task": 0}
    try:
        return _run(stream, strategy, params, seed, progress, where)
    except FloatingPointError as error:
        return diverged_result(strategy, seed, where["task"], error, METRICS)


def _run(stream, strategy, params, seed, progress, where):
    clf = ContinualClassifier(
        **params,
        classes=stream.classes,
        multi_head=stream.multi_head,
        random_state=seed,
    )
    if strategy.startswith("joint"):
        budget = len(stream.task(0)[1]) if strategy == "joint-budget" else None
        seconds = _train_jointly(clf, stream, seed, progress, budget)
        R = np.array(
            [
                [
                    clf.score(
                        stream.X_test[stream.t_test == i],
                        stream.y_test[stream.t_test == i],
                    )
                    for i in range(stream.n_tasks)
                ]
            ]
        )
        metrics = dict(
            average_accuracy=float(R.mean()),
            forgetting=0.0,
            backward_transfer=0.0,
            learning_accuracy=float(R.mean()),
        )
        if stream.task_classes is not None:
            metrics["task_il_accuracy"] = task_il_accuracy(clf, stream)
    else:
        seconds = 0.0
        for k in range(stream.n_tasks):
            X, y = stream.task(k)
            where["task"] = k
            start = time.perf_counter()
            clf.partial_fit(X, y, task_id=k)
            seconds += time.perf_counter() - start
            if progress is not None:
                progress()
        R, metrics = _scores(clf, stream)
    return _result(strategy, seed, R, seconds, metrics)


def _scores(clf, stream):
    R = accuracy_matrix(clf, stream.X_test, stream.y_test, stream.t_test)
    metrics = dict(
        average_accuracy=average_accuracy(R),
        forgetting=forgetting(R),
        backward_transfer=backward_transfer(R),
        learning_accuracy=learning_accuracy(R),
    )
    if stream.task_classes is not None:
        metrics["task_il_accuracy"] = task_il_accuracy(clf, stream)
    return R, metrics


def task_il_accuracy(clf, stream):
    """The mean over tasks of the accuracy after the last task, each sample's
    prediction the argmax over its task's classes (the DER paper's task-IL
    score of a class-incremental fit)."""
    scores = []
    for k, classes in enumerate(stream.task_classes):
        rows = stream.t_test == k
        X, _ = clf._forward_inputs(stream.X_test[rows])
        mask = torch.zeros(len(X), len(clf.classes_), dtype=torch.bool)
        mask[:, np.searchsorted(clf.classes_, classes)] = True
        index = clf._forward_tensor(X, mask).argmax(1).numpy()
        scores.append(np.mean(clf.classes_[index] == stream.y_test[rows]))
    return float(np.mean(scores))


def _result(strategy, seed, R, seconds, metrics):
    return dict(
        strategy=strategy,
        seed=seed,
        R=R.tolist(),
        seconds=seconds,
        diverged=False,
        diverged_task=None,
        error=None,
        **metrics,
    )


def run_seeds_together(streams, strategy, params, seeds, *, progress=None):
    """Train ``strategy`` with each of ``seeds``, seed ``seeds[i]`` on ``streams[i]``.

    The seeds (initialization and sample order) of a sequential strategy
    train as one stacked network when they can
    (:func:`skcl._engine.fit_together`), task after task, each on its
    own stream (or one stream shared by every seed); each run's ``seconds``
    is its share of the group's training time.

    Returns
    -------
    results : list of dict
        One per seed, as :func:`run_strategy` returns.
    reason : str or None
        Why the seeds trained one by one, or None if they trained together.
    """
    if isinstance(streams[0], PlasticityStream):
        return run_plasticity_seeds(streams, strategy, params, seeds, progress=progress)
    if strategy.startswith("joint"):
        results = [
            run_strategy(stream, strategy, params, seed)
            for stream, seed in zip(streams, seeds, strict=True)
        ]
        return results, "the joint strategies train once on the union of the tasks"
    clfs = {
        seed: ContinualClassifier(
            **params,
            classes=stream.classes,
            multi_head=stream.multi_head,
            random_state=seed,
        )
        for stream, seed in zip(streams, seeds, strict=True)
    }
    stream_of = dict(zip(seeds, streams, strict=True))
    own_data = len({id(stream) for stream in streams}) > 1
    seconds, failed, reasons = dict.fromkeys(seeds, 0.0), {}, set()
    for k in range(streams[0].n_tasks):
        alive = [seed for seed in seeds if seed not in failed]
        tasks = [stream_of[seed].task(k) for seed in alive]
        start = time.perf_counter()
        if own_data:
            Xs, ys = zip(*tasks, strict=True)
            ts = [np.full(len(y), k) for y in ys]
            outcomes, reason = fit_together(
                [clfs[seed] for seed in alive], Xs, ys, ts, partial=True, own_data=True
            )
        else:
            X, y = tasks[0]
            outcomes, reason = fit_together(
                [clfs[seed] for seed in alive], X, y, np.full(len(y), k), partial=True
            )
        elapsed = (time.perf_counter() - start) / max(1, len(alive))
        reasons.add(reason)
        for seed, outcome in zip(alive, outcomes, strict=True):
            seconds[seed] += elapsed
            if isinstance(outcome, FloatingPointError):
                failed[seed] = (k, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if progress is not None:
            progress()
    results = []
    for seed in seeds:
        if seed in failed:
            results.append(diverged_result(strategy, seed, *failed[seed], METRICS))
            continue
        R, metrics = _scores(clfs[seed], stream_of[seed])
        results.append(_result(strategy, seed, R, seconds[seed], metrics))
    reasons.discard(None)
    return results, (sorted(reasons)[0] if reasons else None)


def _train_jointly(clf, stream, seed, progress, budget):
    """Train one task made of all tasks, ``max_epochs`` shuffled passes.

    With a ``budget``, the passes go over that many samples drawn once from
    the union.
    """
    epochs = clf.max_epochs
    clf.set_params(max_epochs=1)
    tasks = [stream.task(k) for k in range(stream.n_tasks)]
    sizes = [len(y) for _, y in tasks]
    offsets = np.cumsum([0, *sizes])
    rng = np.random.RandomState(seed)
    samples = rng.permutation(offsets[-1])[:budget]
    seconds = 0.0
    for _ in range(epochs):
        order = samples[rng.permutation(len(samples))]
        for start in range(0, len(order), _JOINT_CHUNK):
            rows = order[start : start + _JOINT_CHUNK]
            task = np.searchsorted(offsets, rows, side="right") - 1
            X = np.concatenate(
                [tasks[k][0][rows[task == k] - offsets[k]] for k in range(len(tasks))]
            )
            y = np.concatenate(
                [tasks[k][1][rows[task == k] - offsets[k]] for k in range(len(tasks))]
            )
            begin = time.perf_counter()
            clf.partial_fit(X, y, task_id=0)
            seconds += time.perf_counter() - begin
        if progress is not None:
            progress()
    return seconds


def run_in_worker(stream_args, strategy, params, seed):
    """Run in a joblib worker: one torch thread, the stream cached per process.

    The stream is drawn with the run's ``seed``: each seed is a replicate of
    the whole experiment (task draws, initialization and sample order).
    """
    torch.set_num_threads(1)
    stream = cached_stream(**stream_args, seed=seed)
    return run_strategy(stream, strategy, params, seed)


def run_seeds_in_worker(stream_args, strategy, params, seeds, stream_seed):
    """Run in a joblib worker: :func:`run_seeds_together` on one thread.

    Each seed draws its own stream, unless ``stream_seed`` names one for all.
    """
    torch.set_num_threads(1)
    return run_seeds_together(
        seed_streams(stream_args, seeds, stream_seed), strategy, params, seeds
    )


def seed_streams(stream_args, seeds, stream_seed):
    """One stream per seed: its own draw, or the one of ``stream_seed`` (not None)."""
    from ._streams import load_stream

    key = tuple(sorted(stream_args.items()))
    if stream_seed is not None:
        return [cached_stream(**stream_args, seed=stream_seed)] * len(seeds)
    if _SEED_STREAMS.get("key") != (key, tuple(seeds)):
        _SEED_STREAMS.clear()
        _SEED_STREAMS["key"] = (key, tuple(seeds))
        _SEED_STREAMS["streams"] = [load_stream(**stream_args, seed=s) for s in seeds]
    return _SEED_STREAMS["streams"]


_SEED_STREAMS = {}


_STREAMS = {}


def cached_stream(**stream_args):
    from ._streams import load_stream

    key = tuple(sorted(stream_args.items()))
    if key not in _STREAMS:
        _STREAMS.clear()
        _STREAMS[key] = load_stream(**stream_args)
    return _STREAMS[key]


def environment():
    """What a reader needs to compare two runs' scores.

    The versions of skcl and of what it trains with, Python, the CPU, the
    float kernels torch picked for it (``cpu_capability``), the torch threads,
    the default dtype and the environment variables that change the kernels.
    Two runs that agree on all of it give bitwise the same scores; float32
    training moves with any of it (``docs/benchmarks.md`` measures by how much).
    For reading wall times, the date and the machine's load average (over the
    last minute, where the system reports one) when the run began.
    """
    import sklearn
    import skorch

    from .. import __version__

    return dict(
        skcl=__version__,
        torch=torch.__version__,
        sklearn=sklearn.__version__,
        skorch=skorch.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        cpu=_cpu_name(),
        cores=os.cpu_count(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        torch_threads=torch.get_num_threads(),
        dtype=str(torch.get_default_dtype()).removeprefix("torch."),
        kernel_settings={k: os.environ[k] for k in _KERNEL_SETTINGS if k in os.environ},
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
