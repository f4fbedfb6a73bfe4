import copy

import torch
import torch.nn.functional as F
from torch import nn

from .._constraints import SIZE
from .._plugin import Plugin
from ..modules import MLP
from ._base import Replay


def feature_extractor(module):
    """Return the function that maps inputs to ``module``'s penultimate layer.

    For :class:`skcl.modules.MLP`, the last hidden layer's activations (after
    its activation and dropout); for an :class:`torch.nn.Sequential`, every
    layer but the last. Other modules are refused with a TypeError: their
    feature layer cannot be told.
    """
    if isinstance(module, MLP):
        return lambda X: module.layers[:-1](X.flatten(1))
    if isinstance(module, nn.Sequential) and len(module) > 1:
        return module[:-1]
    raise TypeError(
        f"a feature extractor is defined for skcl.modules.MLP and nn.Sequential "
        f"modules of two layers or more (the penultimate layer), not for "
        f"{type(module).__name__}."
    )


def herding(features, m):
    """Return the indices of ``m`` rows of ``features`` chosen by herding.

    Greedily, the row that brings the running mean of the chosen rows
    closest (Euclidean) to the mean of all rows (Welling, 2009; Rebuffi et
    al., 2017), in the order chosen.
    """
    target = features.mean(0)
    chosen = []
    total = torch.zeros_like(target)
    free = torch.ones(len(features), dtype=torch.bool, device=features.device)
    for k in range(1, min(m, len(features)) + 1):
        cost = (target - (total + features) / k).norm(dim=1)
        i = int(cost.masked_fill(~free, float("inf")).argmin())
        chosen.append(i)
        free[i] = False
        total = total + features[i]
    return torch.tensor(chosen, dtype=torch.long, device=features.device)


class ICaRL(Replay):
    """iCaRL: herding exemplars, sigmoid distillation, nearest-mean prediction.

    Incremental classifier and representation learning (Rebuffi et al.,
    CVPR 2017), with the loss, herding and means of Mammoth's code for the
    DER paper's tables (where, at the paper's commit, the exemplars never
    enter training; see ``benchmarks/icarl_reference.py``):

    - **Memory**: ``memory_size`` exemplars shared equally by the classes
      seen, ``memory_size // n_classes_seen`` each. After each chunk of a
      task, the exemplars of each class in the chunk are chosen by
      :func:`herding` in the network's feature space (the penultimate layer,
      unnormalised) among the chunk's samples of that class and its current
      exemplars; the other classes keep the first of theirs in herding
      order.
    - **Training**: each step also trains on ``memory_batch_size`` exemplars
      of the classes of earlier tasks, and the loss *replaces* the
      cross-entropy: the mean binary cross-entropy with logits over the
      classes seen so far, with one-hot targets for the current task's
      classes and, for the earlier tasks' classes, the sigmoid outputs of the
      network as it was at the end of the previous task (:attr:`teacher_`).
      It is the step's task loss (:meth:`~skcl.Plugin.task_loss`): the
      history's ``train_loss`` and what other plug-ins read of the task
      loss's gradient (:class:`~skcl.penalties.SI`) are iCaRL's loss.
    - **Prediction** (:meth:`infer`): by the nearest mean of exemplars in
      feature space, computed with the network after each chunk; the
      estimator's ``predict`` is the class of the nearest mean,
      ``predict_proba`` the softmax of the negative squared distances.
      Classes without exemplars are never predicted. The accuracy matrix
      uses the means of each task's end; the initial parameters
      (``use_snapshot("initial")``) predict from the logits.

    Applies to :class:`~skcl.ContinualClassifier` only (a TypeError for the
    regressor) with an :class:`skcl.modules.MLP` or :class:`torch.nn.Sequential`
    network, without ``multi_head`` (refused: iCaRL is class-incremental; a
    task-incremental score masks the predictions instead). On a task-free
    stream (one task, fed in chunks) the memory and the means follow each
    chunk, but there is no distillation, which needs task boundaries. Its
    hooks do not stack: in a stacked search its candidates train one by one.

    Parameters
    ----------
    memory_size : int, default=200
        The exemplars kept, shared by the classes seen; at least the number
        of classes seen.
    memory_batch_size : int, default=10
        The exemplars added to each step's mini-batch.

    Attributes
    ----------
    memory_X_, memory_y_ : Tensor
        The exemplars and their encoded labels, by class, each class's in
        herding order.
    teacher_ : torch.nn.Module
        The network at the end of the previous task.
    old_classes_ : Tensor
        A boolean mask of the classes trained before the current task.
    class_means_ : list of Tensor
        Per task, the mean features of each class's exemplars after its
        last chunk, shape ``(n_classes, n_features)``.
    mean_classes_ : list of Tensor
        Per task, a boolean mask of the classes that have a mean.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import ICaRL
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 4
    >>> clf = ContinualClassifier(replay=ICaRL(memory_size=20), max_epochs=1)
    >>> clf = clf.fit(X, y // 2 * 2 + y % 2, task_id=np.repeat([0, 1], 50))
    >>> clf.replay_.memory_y_.bincount().tolist()  # 20 // 4 per class
    [5, 5, 5, 5]
    """

    _frozen_params = ("memory_size",)
    _parameter_constraints: dict = {  # noqa: RUF012
        "memory_size": [SIZE],
        "memory_batch_size": [SIZE],
    }

    def __init__(self, *, memory_size=200, memory_batch_size=10):
        self.memory_size = memory_size
        self.memory_batch_size = memory_batch_size

    def initialize(self, net):
        if not isinstance(net.criterion_, nn.CrossEntropyLoss):
            raise TypeError(
                f"{type(self).__name__} learns classes: use it with "
                "ContinualClassifier."
            )
        feature_extractor(net.module_)  # refuses a module without one
        device = next(net.module_.parameters()).device
        n_classes = len(net.classes)
        self.teacher_ = copy.deepcopy(net.module_).eval().requires_grad_(False)
        self.old_classes_ = torch.zeros(n_classes, dtype=torch.bool, device=device)
        self._active = self.old_classes_.clone()
        self.memory_X_ = self.memory_y_ = None
        self._replay_rows = torch.zeros(0, dtype=torch.long, device=device)
        self.class_means_, self.mean_classes_ = [], []

    def memory_bytes(self, row_bytes, n_classes):
        """Return the bytes of ``memory_size`` exemplars (inputs and labels)."""
        return self.memory_size * (row_bytes["X"] + row_bytes["y"])

    def begin_task(self, net):
        self._active = self.old_classes_.clone()

    def end_task(self, net):
        self.teacher_.load_state_dict(net.module_.state_dict())
        self.old_classes_ = self.old_classes_ | self._active
        self._replay_rows = self._old_rows()

    def _old_rows(self):
        if self.memory_y_ is None:
            return self._replay_rows
        return self.old_classes_[self.memory_y_].nonzero()[:, 0]

    def before_forward(self, net, step):
        if step.output_mask is not None:
            raise ValueError(
                f"{type(self).__name__} is class-incremental: it does not train "
                "with multi_head=True (mask the predictions to score task by task)."
            )
        self._active[step.y] = True
        rows = self._replay_rows
        if not len(rows):
            return
        generator = getattr(net, "generator_", None)
        if len(rows) > self.memory_batch_size:
            pick = torch.randperm(len(rows), generator=generator)
            rows = rows[pick[: self.memory_batch_size].to(rows.device)]
        step.inputs = torch.cat([step.X, self.memory_X_.index_select(0, rows)])
        step.targets = torch.cat([step.y, self.memory_y_.index_select(0, rows)])

    def task_loss(self, net, step):
        logits = step.logits
        one_hot = logits.new_zeros(logits.shape)
        targets = one_hot.scatter_(1, step.targets[:, None], 1.0)
        if bool(self.old_classes_.any()):
            with torch.no_grad():
                old = torch.sigmoid(self.teacher_(step.inputs))
            targets = torch.where(self.old_classes_, old, targets)
        active = self._active.to(logits.dtype)
        return F.binary_cross_entropy_with_logits(
            logits, targets, weight=active, reduction="sum"
        ) / (len(logits) * active.sum())

    @torch.no_grad()
    def consolidate(self, net, X, y):
        features = self._features(net)
        X_all, y_all = X, y
        if self.memory_X_ is not None:
            X_all = torch.cat([self.memory_X_, X])
            y_all = torch.cat([self.memory_y_, y])
        classes = y_all.unique()
        m = self.memory_size // len(classes)
        if m == 0:
            raise ValueError(
                f"memory_size={self.memory_size} cannot hold one exemplar for each "
                f"of the {len(classes)} classes seen; raise memory_size."
            )
        new = torch.zeros_like(self.old_classes_)
        new[y] = True
        kept = []
        for c in classes.tolist():
            rows = (y_all == c).nonzero()[:, 0]
            if new[c]:
                rows = rows[herding(features(X_all[rows]), m)]
            kept.append(rows[:m])
        kept = torch.cat(kept)
        self.memory_X_, self.memory_y_ = X_all[kept], y_all[kept]
        self._replay_rows = self._old_rows()
        self._store_means(net, features)

    def _features(self, net):
        module = net.module_
        extract = feature_extractor(module)

        def features(X):
            training = module.training
            module.eval()
            try:
                return extract(X)
            finally:
                module.train(training)

        return features

    def _store_means(self, net, features):
        n_classes = len(self.old_classes_)
        F_mem = features(self.memory_X_)
        counts = torch.zeros(n_classes, dtype=F_mem.dtype, device=F_mem.device)
        counts.index_add_(
            0, self.memory_y_, torch.ones_like(self.memory_y_, dtype=F_mem.dtype)
        )
        sums = F_mem.new_zeros((n_classes, F_mem.shape[1]))
        sums.index_add_(0, self.memory_y_, F_mem)
        means = sums / counts.clamp(min=1)[:, None]
        if len(self.class_means_) > net.task_index_:
            self.class_means_.pop()
            self.mean_classes_.pop()
        self.class_means_.append(means)
        self.mean_classes_.append(counts > 0)

    def infer(self, net, X, outputs, task):
        if not 0 <= task < len(self.class_means_):
            return outputs
        features = feature_extractor(net.module_)(X)
        means = self.class_means_[task].to(features.dtype)
        distances = (features[:, None, :] - means[None]).pow(2).sum(-1)
        return (-distances).masked_fill(~self.mean_classes_[task], float("-inf"))

    def check_state(self, net, X, y):
        """Check the exemplars, masks and means against ``net``'s classes and inputs.

        The exemplars hold at most ``memory_size`` inputs shaped and typed as
        ``X``, with labels of ``net``'s classes; the class masks are boolean
        over the classes; the means hold at most one entry per task, each a
        ``(n_classes, n_features)`` tensor with its mask.
        """
        Plugin.check_state(self, net, X, y)
        n_classes = len(net.classes)
        masks = {"old_classes_": self.old_classes_, "_active": self._active}
        masks.update(
            {f"mean_classes_[{i}]": m for i, m in enumerate(self.mean_classes_)}
        )
        for name, mask in masks.items():
            if not _is(mask, torch.bool, (n_classes,)):
                raise ValueError(
                    f"{name} should be a boolean mask of {n_classes} classes."
                )
        means = self.class_means_
        if len(means) != len(self.mean_classes_) or len(means) > net.task_index_ + 1:
            raise ValueError("class_means_ should hold one entry per trained task.")
        if any(not _is(m, None, (n_classes, m.shape[-1])) for m in means):
            raise ValueError(f"class_means_ should hold tensors of {n_classes} rows.")
        memory_X, memory_y = self.memory_X_, self.memory_y_
        if memory_X is None or memory_y is None:
            if memory_X is not memory_y or len(self._replay_rows):
                raise ValueError("memory_X_ and memory_y_ should both be None.")
            return
        n = len(memory_y)
        if not (
            _is(memory_X, X.dtype, (n, *X.shape[1:]))
            and _is(memory_y, torch.long, (n,))
            and n <= self.memory_size
            and bool(((memory_y >= 0) & (memory_y < n_classes)).all())
        ):
            raise ValueError(
                f"memory_X_ and memory_y_ should hold at most memory_size="
                f"{self.memory_size} inputs like X and labels of the {n_classes} "
                "classes."
            )
        rows = self._replay_rows
        if not _is(rows, torch.long, rows.shape[:1]) or (
            len(rows) and not 0 <= int(rows.min()) <= int(rows.max()) < n
        ):
            raise ValueError("_replay_rows should hold rows of the memory.")


def _is(tensor, dtype, shape):
    """Whether ``tensor`` is a tensor of ``shape`` (and ``dtype``, unless None)."""
    return (
        isinstance(tensor, torch.Tensor)
        and tuple(tensor.shape) == tuple(shape)
        and dtype in (None, tensor.dtype)
    )
