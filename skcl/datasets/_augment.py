import numbers

import torch
from torch.nn.functional import pad

from .._constraints import Interval
from .._plugin import Plugin


class RandomCropFlip(Plugin):
    """The standard training augmentation of image benchmarks, per mini-batch.

    At every training step, each image of the mini-batch is padded by
    ``padding`` pixels on every side (with ``fill``), cropped back to its
    size at a random offset, and mirrored left-right with probability 1/2
    (torchvision's ``RandomCrop(size, padding)`` then
    ``RandomHorizontalFlip()``, as DER, GDumb and most CIFAR and Tiny
    ImageNet benchmarks train). It runs on the training device, inside the
    estimator's one training step, on images ``(n, channels, height, width)``;
    prediction, scoring and the plug-ins' end-of-task computations (EWC's
    Fisher...) see the images unchanged. The draws, per image the row
    offset, the column offset, then the flip, come from the estimator's
    generator, so a ``random_state`` gives the same augmentations on every
    run.

    A plug-in: pass it in ``penalty``, alone or in a list with the
    penalties (``penalty=[EWC(), RandomCropFlip()]``). The augmented images
    replace the mini-batch for the plug-ins that follow it: replay (which
    runs after the penalties) stores and replays them as augmented.

    Parameters
    ----------
    padding : int, default=4
        Pixels of padding on each side; the crop's offset is uniform in
        ``[0, 2 * padding]`` along each axis. 0 crops nothing.
    flip : bool, default=True
        Whether to mirror each image left-right with probability 1/2.
    fill : float, default=0.0
        The value of the padding. On images normalized per channel
        (:func:`normalize_channels`), 0 is the mean colour; torchvision pads
        the raw image with black, ``-mean / std`` once normalized.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import RandomCropFlip
    >>> from skcl.modules import CNN
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(20, 3, 8, 8)).astype("float32"), np.arange(20) % 2
    >>> clf = ContinualClassifier(
    ...     module=CNN, penalty=RandomCropFlip(padding=1), max_epochs=1, random_state=0
    ... )
    >>> clf.fit(X, y).tasks_
    [0]
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        "padding": [Interval(numbers.Integral, 0, None, closed="left")],
        "flip": ["boolean"],
        "fill": [Interval(numbers.Real, None, None, closed="neither")],
    }

    # In a stack, each candidate augments its own rows with its own draws.
    candidate_steps = ("before_forward",)

    def __init__(self, *, padding=4, flip=True, fill=0.0):
        self.padding = padding
        self.flip = flip
        self.fill = fill

    def before_forward(self, net, step):
        X = step.X
        if X.dim() != 4:
            raise ValueError(
                "RandomCropFlip augments images (n, channels, height, width); "
                f"the mini-batch has shape {tuple(X.shape)}."
            )
        generator = getattr(net, "generator_", None)
        n, _, height, width = X.shape
        p = self.padding
        offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        offsets, flips = offsets.to(X.device), flips.to(X.device)
        out = X
        if p:
            padded = pad(X, (p, p, p, p), value=self.fill)
            rows = offsets[0, :, None] + torch.arange(height, device=X.device)
            cols = offsets[1, :, None] + torch.arange(width, device=X.device)
            images = torch.arange(n, device=X.device)[:, None, None]
            # Indexed (n, height, width, channels): channels back to the front.
            out = padded[images, :, rows[:, :, None], cols[:, None, :]]
            out = out.permute(0, 3, 1, 2).contiguous()
        if self.flip:
            out = torch.where(flips[:, None, None, None], out.flip(3), out)
        added = step.inputs[n:]
        step.X = out
        step.inputs = out if not len(added) else torch.cat([out, added])
