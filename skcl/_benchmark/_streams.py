"""Task streams for ``skcl benchmark``, built one task at a time and cached."""

from dataclasses import dataclass, field

import numpy as np

from ..datasets import (
    fetch_mnist,
    load_digits_stream,
    make_permuted_stream,
    make_rotated_stream,
    make_split_stream,
)
from ._image_streams import DATA as _IMAGE_DATA
from ._image_streams import IMAGE_STREAMS, load_image_stream
from ._image_streams import SCENARIOS as _IMAGE_SCENARIOS
from ._plasticity_streams import DATA as _PLASTICITY_DATA
from ._plasticity_streams import PLASTICITY_STREAMS, load_plasticity_stream
from ._plasticity_streams import SCENARIOS as _PLASTICITY_SCENARIOS

STREAMS = (
    "permuted-digits",
    "rotated-digits",
    "split-digits",
    "class-split-digits",
    "permuted-mnist",
    "rotated-mnist",
    "shared-split-mnist",
    "seq-mnist",
    "der-permuted-mnist",
    "der-rotated-mnist",
    *IMAGE_STREAMS,
    *PLASTICITY_STREAMS,
)
# What each stream is, for ``skcl benchmark --help`` and the header of its
# output: the scenario (van de Ven, Tuytelaars and Tolias, 2022: task-, domain-
# or class-incremental, and the heads the network has), then the data. The
# same scores mean different things in each: a task-incremental stream is told
# the task at test time and is far easier than its class-incremental twin.
SCENARIOS = {
    "permuted-digits": "domain-incremental, one shared head",
    "rotated-digits": "domain-incremental, one shared head",
    "split-digits": "task-incremental, one head per task",
    "class-split-digits": "class-incremental, one head for all 10 digits",
    "permuted-mnist": "domain-incremental, one shared head",
    "rotated-mnist": "domain-incremental, one shared head",
    "shared-split-mnist": "domain-incremental, five shared outputs",
    "seq-mnist": "class-incremental, one head for all 10 digits (and "
    "task-incremental: each task's two outputs, from the same fit)",
    "der-permuted-mnist": "domain-incremental, one shared head",
    "der-rotated-mnist": "domain-incremental, one shared head",
    **_IMAGE_SCENARIOS,
    **_PLASTICITY_SCENARIOS,
}
DATA = {
    "permuted-digits": "scikit-learn's 8x8 digits, a new pixel permutation per "
    "task; 5 tasks of the 10 digits, 1,347 training and 450 test images each",
    "rotated-digits": "the digits rotated 10 degrees more at each task; 5 tasks "
    "of the 10 digits, 1,347 training and 450 test images each",
    "split-digits": "the digits in 5 tasks of 2 (0-1, 2-3, ...), the task "
    "given at test time to pick the head; about 270 training and 90 test "
    "images per task",
    "class-split-digits": "the same 5 tasks of 2 digits, no task given at test "
    "time: every digit against every other",
    "permuted-mnist": "MNIST (the IDX files, see --data-home), a new pixel "
    "permutation per task; 20 tasks of 60,000 training and 10,000 test images",
    "rotated-mnist": "MNIST rotated 10 degrees more at each task; 20 tasks of "
    "60,000 training and 10,000 test images",
    "shared-split-mnist": "MNIST in 2 tasks of 5 digits, 0-4 then 5-9 "
    "relabelled 0-4, no task given at test time; about 30,000 training and "
    "5,000 test images per task",
    "seq-mnist": "the DER paper's Seq-MNIST: MNIST in 5 tasks of 2 digits "
    "(0-1, ..., 8-9), scored over the 10 outputs (class-IL) and over the "
    "task's 2 (task-IL); about 12,000 training and 2,000 test images per task",
    "der-permuted-mnist": "the DER paper's P-MNIST: a new pixel permutation "
    "for every task, the first too; 20 tasks of 60,000 training and 10,000 "
    "test images",
    "der-rotated-mnist": "the DER paper's R-MNIST: each task rotated by an "
    "angle drawn uniformly in [0, 180) degrees; 20 tasks of 60,000 training "
    "and 10,000 test images",
    **_IMAGE_DATA,
    **_PLASTICITY_DATA,
}


@dataclass
class TaskStream:
    """A stream whose training tasks are built on demand.

    ``regime`` names the family of training regimes that suit it (see
    ``_presets``); ``test`` holds the held-out samples of every task.
    """

    name: str
    regime: str
    n_tasks: int
    classes: np.ndarray
    build_task: object
    X_test: np.ndarray
    y_test: np.ndarray
    t_test: np.ndarray
    multi_head: bool = False
    # Per task, its classes, where the stream is also scored task-incrementally.
    task_classes: list | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def task(self, k):
        """Return the training inputs and labels of task ``k``."""
        if k not in self._cache:
            self._cache[k] = self.build_task(k)
        return self._cache[k]


def regime_of(name):
    """Return the family of training regimes (see ``_presets``) of stream ``name``."""
    if name.endswith("digits"):
        return "digits"
    if name in IMAGE_STREAMS:
        return name
    if name in PLASTICITY_STREAMS:
        return PLASTICITY_STREAMS[name][0]
    if name == "seq-mnist" or name.startswith("der-"):
        return name if name.startswith("der-") else "der-seq-mnist"
    return "mnist-rotated" if name.startswith("rotated") else "mnist-permuted"


def load_stream(
    name, *, n_tasks=None, data_home=None, train_size=None, holdout=None, seed=0
):
    """Build the stream ``name`` (one of ``STREAMS``); ``seed`` draws its tasks.

    With ``holdout``, an MNIST stream keeps its last ``holdout`` training
    images out of training and evaluates on them instead of the test images
    (for choosing regimes without looking at the test set).
    """
    if name.endswith("digits"):
        if holdout is not None:
            raise ValueError("holdout applies to the MNIST streams only.")
        return _digits(name.removesuffix("-digits"), n_tasks, seed)
    if name == "shared-split-mnist":
        return _shared_split_mnist(n_tasks or 2, data_home, train_size, holdout)
    if name in IMAGE_STREAMS:
        return load_image_stream(name, n_tasks, data_home, train_size, holdout)
    if name in PLASTICITY_STREAMS:
        return load_plasticity_stream(
            name, n_tasks, data_home, train_size, holdout, seed
        )
    if name == "seq-mnist":
        return _seq_mnist(n_tasks or 5, data_home, train_size, holdout)
    stream = _mnist(
        name.split("-")[-2], n_tasks or 20, data_home, train_size, holdout, seed,
        der=name.startswith("der-"),
    )  # fmt: skip
    stream.name, stream.regime = name, regime_of(name)
    return stream


def _digits(kind, n_tasks, seed):
    n_tasks = n_tasks or 5
    X, X_test, y, y_test, t, t_test = load_digits_stream(
        kind.removeprefix("class-"), n_tasks=n_tasks, random_state=seed
    )
    return _stored_stream(
        f"{kind}-digits", "digits", (X, y, t), (X_test, y_test, t_test), kind == "split"
    )


def _stored_stream(name, regime, train, test, multi_head=False):
    """A stream of tasks held in arrays ``(X, y, task)``, one task at a time."""
    X, y, t = train
    return TaskStream(
        name=name,
        regime=regime,
        n_tasks=len(np.unique(t)),
        classes=np.unique(y),
        build_task=lambda k: (X[t == k], y[t == k]),
        X_test=test[0],
        y_test=test[1],
        t_test=test[2],
        multi_head=multi_head,
    )


def _load_mnist(data_home, train_size, holdout):
    mnist = fetch_mnist(data_home, cache=False)
    X, y = mnist.X_train, mnist.y_train
    X_eval, y_eval = mnist.X_test, mnist.y_test
    if holdout is not None:
        if not 0 < holdout < len(y):
            raise ValueError(f"holdout must be in (0, {len(y)}), got {holdout}.")
        X, X_eval = X[:-holdout], X[-holdout:]
        y, y_eval = y[:-holdout], y[-holdout:]
    return X[:train_size], y[:train_size], X_eval, y_eval


def _shared_split_mnist(n_tasks, data_home, train_size, holdout):
    X, y, X_eval, y_eval = _load_mnist(data_home, train_size, holdout)
    if 10 % n_tasks:
        raise ValueError(
            f"shared-split-mnist needs n_tasks dividing 10, got {n_tasks}."
        )
    return _stored_stream(
        "shared-split-mnist",
        "mnist-permuted",
        make_split_stream(X, y, n_tasks=n_tasks, relabel=True),
        make_split_stream(X_eval, y_eval, n_tasks=n_tasks, relabel=True),
    )


def _seq_mnist(n_tasks, data_home, train_size, holdout):
    X, y, X_eval, y_eval = _load_mnist(data_home, train_size, holdout)
    train = make_split_stream(X, y, n_tasks=n_tasks)
    *test, task_classes = make_split_stream(
        X_eval, y_eval, n_tasks=n_tasks, return_task_classes=True
    )
    stream = _stored_stream("seq-mnist", "der-seq-mnist", train, test)
    stream.task_classes = [np.asarray(c) for c in task_classes]
    return stream


def der_rotation_angles(n_tasks, seed):
    """The DER protocol's R-MNIST angles: one per task, uniform in [0, 180)."""
    return np.random.RandomState(seed).uniform(0.0, 180.0, n_tasks)


def _mnist(kind, n_tasks, data_home, train_size, holdout, seed, der=False):
    """Permuted or rotated MNIST: Stable SGD's protocol (the first task as is,
    rotations of 10 degrees more per task) or, with ``der``, the DER paper's
    (every task permuted; angles of :func:`der_rotation_angles`)."""
    X, y, X_eval, y_eval = _load_mnist(data_home, train_size, holdout)
    if kind == "permuted":
        *_, perms = make_permuted_stream(
            X[:1], y[:1], n_tasks, permute_first=der, return_permutations=True,
            random_state=seed,
        )  # fmt: skip

        def transform(images, k):
            return images[:, perms[k]]

    else:
        angles = (
            der_rotation_angles(n_tasks, seed) if der else 10.0 * np.arange(n_tasks)
        )

        def transform(images, k):
            return make_rotated_stream(
                images, np.zeros(len(images)), angles=[angles[k]]
            )[0]

    return TaskStream(
        name=f"{kind}-mnist",
        regime=regime_of(f"{kind}-mnist"),
        n_tasks=n_tasks,
        classes=np.arange(10),
        build_task=lambda k: (transform(X, k), y),
        X_test=np.concatenate([transform(X_eval, k) for k in range(n_tasks)]),
        y_test=np.tile(y_eval, n_tasks),
        t_test=np.repeat(np.arange(n_tasks), len(y_eval)),
    )
