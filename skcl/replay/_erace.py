import torch

from ._base import Replay


class ERACE(Replay):
    """Experience replay with the asymmetric cross-entropy (ER-ACE).

    On the incoming batch, the softmax of the cross-entropy runs over the
    outputs of the classes present in the batch and of the classes not seen
    yet; the other seen classes' outputs are masked, so that new classes do
    not push the old ones' logits down. The memory batch, up to
    ``memory_batch_size`` samples drawn without replacement, keeps the full
    cross-entropy; each step's loss is the sum of the two means (Caccia et
    al., "New Insights on Reducing Abrupt Representation Change in Online
    Continual Learning", ICLR 2022). The batch is then offered to the memory.

    This is the mask of the authors' code and of Mammoth's ``er_ace``
    (``present`` plus the outputs from the largest seen class index on),
    written for any order of classes: the classes not seen yet are those no
    batch has shown. Two choices differ from Mammoth's defaults, so that it
    also serves task-free streams: the mask and replay apply from the first
    task on (Mammoth's ``task_free=True``), and the final layer is the
    network's own (not the cosine classifier of ``use_custom_classifier``).

    Classifier only (:class:`~skcl.ContinualClassifier`). With
    ``multi_head=True`` the mask is also limited to the task's outputs, and
    replayed rows keep their own task's. It applies to task-free streams.

    Parameters
    ----------
    memory_size : int, default=200
        The samples kept (per class and task with
        ``memory="class_balanced"``).
    memory : {"reservoir", "class_balanced"}, default="reservoir"
        How the memory is filled (see :class:`ER`).
    memory_batch_size : int, default=64
        The memory samples replayed at each step.

    Attributes
    ----------
    memory_ : ReservoirMemory or ClassBalancedMemory
        The memory (see :class:`ER` for its size in bytes).
    seen_classes_ : Tensor
        Boolean, one per class: the classes of the batches trained so far.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.replay import ERACE
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 4
    >>> clf = ContinualClassifier(replay=ERACE(memory_size=20), max_epochs=1)
    >>> clf = clf.fit(X[y < 2], y[y < 2], task_id=0)
    >>> clf.replay_.seen_classes_.tolist()
    [True, True]
    """

    # In a stack, the hooks run once per candidate (see Plugin).
    candidate_steps = ("before_forward", "loss", "after_step")

    def __init__(self, *, memory_size=200, memory="reservoir", memory_batch_size=64):
        self.memory_size = memory_size
        self.memory = memory
        self.memory_batch_size = memory_batch_size

    def initialize(self, net):
        if not isinstance(net.criterion_, torch.nn.CrossEntropyLoss):
            raise TypeError(
                "ERACE masks class outputs: use it with ContinualClassifier."
            )
        super().initialize(net)
        self.seen_classes_ = torch.zeros(
            len(net.classes), dtype=torch.bool, device=net.device
        )

    def check_state(self, net, X, y):
        """Also check that ``seen_classes_`` holds one flag per class."""
        super().check_state(net, X, y)
        seen = self.seen_classes_
        if not (
            isinstance(seen, torch.Tensor)
            and seen.dtype == torch.bool
            and seen.shape == (len(net.classes),)
        ):
            raise ValueError(
                f"seen_classes_ should be a bool tensor of {len(net.classes)} flags."
            )

    def before_forward(self, net, step):
        present = torch.zeros_like(self.seen_classes_)
        present[step.y] = True
        self.seen_classes_ |= present
        mask = present | ~self.seen_classes_
        if step.output_mask is not None:  # the task's outputs (multi-head)
            mask = mask & step.output_mask
        step.output_mask = mask

    def loss(self, net, step):
        rows = self.memory_.sample(self.memory_batch_size, generator=net.generator_)
        return None if rows is None else self.replay_loss(net, rows)

    def after_step(self, net, step):
        self.remember(net, step)
