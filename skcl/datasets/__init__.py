"""Streams of tasks for continual learning, and the data sets to build them from.

The stream builders return plain arrays ``(X, y, task_id)`` with the tasks
concatenated in order (task 0's rows first), ready for
``fit(X, y, task_id=task_id)``; the loaders return the six arrays of
:func:`train_test_split_stream`.
"""

from ._augment import RandomCropFlip
from ._cifar import fetch_cifar10, fetch_cifar100
from ._column import split_by_column
from ._digits import load_digits_stream
from ._idx import load_idx
from ._mnist import fetch_mnist
from ._normalize import normalize_channels
from ._permuted import make_permuted_stream
from ._plasticity_mnist import iter_permuted_mnist, make_random_label_mnist
from ._random_label import make_random_label_stream
from ._rotated import make_rotated_stream
from ._split import make_split_stream
from ._tabular import load_diabetes_stream, load_wine_stream
from ._tiny_imagenet import fetch_tiny_imagenet
from ._train_test import train_test_split_stream

__all__ = [
    "RandomCropFlip",
    "fetch_cifar10",
    "fetch_cifar100",
    "fetch_mnist",
    "fetch_tiny_imagenet",
    "load_diabetes_stream",
    "load_digits_stream",
    "iter_permuted_mnist",
    "load_idx",
    "load_wine_stream",
    "make_permuted_stream",
    "make_random_label_mnist",
    "make_random_label_stream",
    "make_rotated_stream",
    "make_split_stream",
    "normalize_channels",
    "split_by_column",
    "train_test_split_stream",
]
