"""What a chunk of training is told: one settings object for every K."""

import dataclasses

import torch

from .._state import equal_values

SHARED = "shared"
PER_CANDIDATE = "per candidate"


@dataclasses.dataclass(frozen=True)
class ChunkSettings:
    """The settings of one chunk of training, as the estimator opens it.

    The engine reads every field, at every K. Each field declares how a
    stack of candidates takes it: ``shared`` (one value for the whole
    stack: candidates that differ in it train alone) or ``per candidate``.
    A field that declares neither makes every stack of K > 1 refuse.

    Attributes
    ----------
    epochs : int
        Passes over the chunk.
    batch_size : int
        Rows of each step.
    lr : float
        The learning rate of every optimizer group.
    momentum : float or None
        The momentum of every optimizer group that has one; None keeps the
        optimizer's own.
    penalty_step : {"implicit", "explicit"}
        How the quadratic penalties step.
    output_mask : Tensor or None
        The outputs trained (None for all).
    """

    epochs: int = dataclasses.field(metadata={"stacked": SHARED})
    batch_size: int = dataclasses.field(metadata={"stacked": SHARED})
    lr: float = dataclasses.field(metadata={"stacked": PER_CANDIDATE})
    momentum: float | None = dataclasses.field(metadata={"stacked": PER_CANDIDATE})
    penalty_step: str = dataclasses.field(metadata={"stacked": SHARED})
    output_mask: torch.Tensor | None = dataclasses.field(metadata={"stacked": SHARED})


def stacking_reason(settings):
    """Why chunks with these ``settings`` (one per candidate) cannot stack, or None."""
    first = settings[0]
    for field in dataclasses.fields(first):
        kind = field.metadata.get("stacked")
        if kind == PER_CANDIDATE:
            continue
        if kind != SHARED:
            return f"the setting {field.name} does not say how candidates share it"
        value = getattr(first, field.name)
        if any(not equal_values(getattr(s, field.name), value) for s in settings[1:]):
            return f"the candidates differ in the setting {field.name}"
    return None
