"""The image streams of ``skcl benchmark``: CIFAR-10, CIFAR-100, Tiny ImageNet.

Each task is a group of consecutive classes (in label order), built when it
is first trained, normalized per channel with the training images'
statistics; the test images of every task are normalized once.
"""

import numpy as np

from ..datasets import (
    fetch_cifar10,
    fetch_cifar100,
    fetch_tiny_imagenet,
    normalize_channels,
)

# name: loader, default number of tasks, whether the network has one head per
# task (else one head for all classes, also scored per task), the archive.
IMAGE_STREAMS = {
    "split-cifar100": (fetch_cifar100, 20, True, "cifar-100-binary.tar.gz"),
    "seq-cifar10": (fetch_cifar10, 5, False, "cifar-10-binary.tar.gz"),
    "seq-tiny-imagenet": (fetch_tiny_imagenet, 10, False, "tiny-imagenet-200.zip"),
}
SCENARIOS = {
    "split-cifar100": "task-incremental, one head per task",
    "seq-cifar10": "class-incremental, one head for all 10 classes (and "
    "task-incremental: each task's two outputs, from the same fit)",
    "seq-tiny-imagenet": "class-incremental, one head for all 200 classes (and "
    "task-incremental: each task's 20 outputs, from the same fit)",
}
DATA = {
    "split-cifar100": "Stable SGD's Split CIFAR-100 (Table 2): CIFAR-100 (the "
    "binary archive, see --data-home) in 20 tasks of 5 classes (0-4, 5-9, "
    "...), the task given at test time to pick the head; 2,500 training and "
    "500 test images per task, the reduced ResNet-18",
    "seq-cifar10": "the DER paper's Seq-CIFAR-10: CIFAR-10 (the binary "
    "archive) in 5 tasks of 2 classes; 10,000 training and 2,000 test images "
    "per task, ResNet-18",
    "seq-tiny-imagenet": "the DER paper's Seq-Tiny-ImageNet: Tiny ImageNet "
    "(the zip of JPEGs; needs Pillow) in 10 tasks of 20 classes; 10,000 "
    "training and 1,000 test images per task, ResNet-18",
}


def load_image_stream(name, n_tasks, data_home, train_size, holdout):
    """Build the image stream ``name`` (see ``_streams.load_stream``).

    Its tasks draw nothing: every seed gets the same stream, built once (its
    seeds then train stacked on shared data, holding one copy of the images).
    """
    key = (name, n_tasks, data_home, train_size, holdout)
    if _LAST.get("key") != key:
        _LAST.clear()
        _LAST["stream"] = _build(*key)
        _LAST["key"] = key
    return _LAST["stream"]


_LAST = {}


def _build(name, n_tasks, data_home, train_size, holdout):
    from ._streams import TaskStream

    fetch, default_tasks, multi_head, _ = IMAGE_STREAMS[name]
    data = fetch(data_home)
    X, y = data.X_train, data.y_train
    X_eval, y_eval = data.X_test, data.y_test
    if holdout is not None:
        X, y, X_eval, y_eval = _hold_out(X, y, holdout)
    X, y = X[:train_size], y[:train_size]
    n_tasks = n_tasks or default_tasks
    classes = np.unique(y)
    if len(classes) % n_tasks:
        raise ValueError(
            f"{name} needs n_tasks dividing its {len(classes)} classes, got {n_tasks}."
        )
    task_classes = np.split(classes, n_tasks)
    task_of = np.empty(classes.max() + 1, dtype=np.int64)
    for k, group in enumerate(task_classes):
        task_of[group] = k
    stats = (data.channel_mean, data.channel_std)

    def build_task(k):
        rows = np.flatnonzero(task_of[y] == k)
        return normalize_channels(X[rows], *stats), y[rows]

    order = np.argsort(task_of[y_eval], kind="stable")
    return TaskStream(
        name=name,
        regime=name,
        n_tasks=n_tasks,
        classes=classes,
        build_task=build_task,
        X_test=normalize_channels(X_eval[order], *stats),
        y_test=y_eval[order],
        t_test=task_of[y_eval[order]],
        multi_head=multi_head,
        task_classes=None if multi_head else task_classes,
    )


def _hold_out(X, y, holdout):
    """The training images less the last ``holdout / n_classes`` of each
    class, and those (every task keeps some)."""
    classes = np.unique(y)
    per_class = holdout // len(classes)
    if not 0 < per_class < np.bincount(y).min():
        raise ValueError(
            f"holdout must be at least {len(classes)} (one image per class) and "
            f"leave every class some training images, got {holdout}."
        )
    last = np.zeros(len(y), dtype=bool)
    for c in classes:
        last[np.flatnonzero(y == c)[-per_class:]] = True
    return X[~last], y[~last], X[last], y[last]
