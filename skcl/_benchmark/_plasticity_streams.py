"""The L2 Init paper's MNIST problems as ``skcl benchmark`` streams.

Each task is drawn when it is reached and only the latest is kept (the 500
Permuted MNIST tasks take 15.7 GB at once); pixels are scaled to [-1, 1] as
the authors' code normalizes them. A task's held-out images are built when
it is scored.
"""

import numpy as np

from ..datasets import fetch_mnist, iter_permuted_mnist, make_random_label_mnist

# name: regime, default number of tasks, default images per task.
PLASTICITY_STREAMS = {
    "plasticity-permuted-mnist": ("plasticity-permuted", 500, 10_000),
    "random-label-mnist": ("plasticity-random-label", 50, 1_200),
}
SCENARIOS = {
    "plasticity-permuted-mnist": "domain-incremental, one shared head, "
    "trained without task ids where the strategy allows",
    "random-label-mnist": "domain-incremental, one shared head, trained "
    "without task ids where the strategy allows",
}
DATA = {
    "plasticity-permuted-mnist": "the L2 Init paper's Permuted MNIST: 500 "
    "tasks of 10,000 MNIST training images drawn per task, a new pixel "
    "permutation per task (the first task unpermuted), 1 epoch of batch 16 "
    "(625 steps); scored on 1,000 test images permuted as the task",
    "random-label-mnist": "the L2 Init paper's Random-label MNIST: 50 tasks "
    "of the same 1,200 MNIST training images, their labels shuffled per task, "
    "400 epochs of batch 16 (30,000 steps); scored on the task's own images "
    "and labels (memorisation)",
}
TEST_SIZE = 1000


class PlasticityStream:
    """A plasticity stream: its tasks in order, drawn anew when restarted.

    ``task(k)`` returns task ``k``'s training images and labels (tasks are
    asked for in order; asking for an earlier one draws the stream again
    from its seed); ``test(k)`` its held-out images and labels.
    """

    multi_head = False
    task_classes = None
    classes = np.arange(10)

    def __init__(self, name, n_tasks, data_home, n_samples, seed):
        self.name = name
        self.regime = PLASTICITY_STREAMS[name][0]
        self.n_tasks = n_tasks
        self._args = (data_home, n_samples, seed)
        self._tasks = None
        self._latest = None
        if name == "random-label-mnist":
            X, y, task_id = make_random_label_mnist(
                data_home, n_tasks=n_tasks, n_samples=n_samples, random_state=seed
            )
            self._images = _scaled(X[task_id == 0])
            self._labels = y.reshape(n_tasks, n_samples)
        else:
            mnist = fetch_mnist(data_home, cache=False)
            rows = np.random.RandomState(seed).permutation(len(mnist.y_test))
            self._test = (
                _scaled(mnist.X_test[rows[:TEST_SIZE]]),
                mnist.y_test[rows[:TEST_SIZE]],
            )
            self._pixels = {}

    def task(self, k):
        """Return the training inputs and labels of task ``k``."""
        if self.name == "random-label-mnist":
            return self._images, self._labels[k]
        if self._latest is None or self._latest[2] > k:
            data_home, n_samples, seed = self._args
            self._tasks = iter_permuted_mnist(
                data_home,
                n_tasks=self.n_tasks,
                n_samples=n_samples,
                return_permutations=True,
                random_state=seed,
            )
            self._latest = None
        while self._latest is None or self._latest[2] < k:
            X, y, task, pixels = next(self._tasks)
            self._pixels[task] = pixels
            self._latest = (_scaled(X), y, task)
        return self._latest[:2]

    def test(self, k):
        """Return the held-out inputs and labels of task ``k`` (trained)."""
        if self.name == "random-label-mnist":
            return self.task(k)
        X, y = self._test
        return X[:, self._pixels[k]], y


def _scaled(X):
    return 2.0 * X - 1.0


def load_plasticity_stream(name, n_tasks, data_home, train_size, holdout, seed):
    """Build the plasticity stream ``name`` (see ``_streams.load_stream``).

    ``train_size`` is the number of images per task (of the 1,200 images
    of Random-label MNIST).
    """
    if holdout is not None:
        raise ValueError(f"holdout does not apply to {name}.")
    _, default_tasks, default_samples = PLASTICITY_STREAMS[name]
    return PlasticityStream(
        name, n_tasks or default_tasks, data_home, train_size or default_samples, seed
    )
