"""SGD with each copy's learning rate and momentum, and each copy's quadratics."""

import torch

from ..penalties._implicit import fold_quadratics


def _per_copy(values, like):
    """``values`` (one per copy) as a ``(K, 1)`` tensor of ``like``'s dtype."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1)


class StackedQuadratic:
    """The folded quadratic penalties of every copy: ``(K, P)`` precision, centre.

    A copy without an active quadratic has zero precision.
    """

    def __init__(self, precision, centre):
        self.precision, self.centre = precision, centre

    @classmethod
    def of(cls, network, forms):
        """Fold each copy's ``forms`` over the trainable parameters of ``network``.

        Returns the stacked quadratic (None if no copy has one) and, per copy,
        the FloatingPointError of a non-finite precision (else None).
        """
        if not any(forms):
            return None, [None] * len(forms)
        copies = network.unstack(network.split(network.flat))
        precisions, centres, errors = [], [], []
        for own, copy_forms in zip(copies, forms, strict=True):
            error = None
            if copy_forms:
                try:
                    precision, centre = fold_quadratics(own, copy_forms)
                except FloatingPointError as caught:
                    error = caught
            if not copy_forms or error is not None:
                precision = centre = [torch.zeros_like(p) for p in own]
            precisions.append(precision)
            centres.append(centre)
            errors.append(error)
        return cls(network.stack(precisions), network.stack(centres)), errors


class StackedSGD:
    """``torch.optim.SGD`` (no dampening, Nesterov or weight decay) per copy.

    Each copy steps with its own learning rate and momentum; a copy's
    quadratic penalties are added to its gradient (``implicit=False``) or
    applied as the implicit step of ``ImplicitQuadraticStep`` after the
    optimizer's (``implicit=True``). Every tensor is ``(K, P)``: the copies'
    trainable parameters side by side.

    Parameters
    ----------
    params : Tensor
        The stacked parameters, updated in place.
    lrs, momenta : list of float
        Each copy's learning rate and momentum.
    buffer : Tensor or None
        The stacked momentum buffers, or None before the first step.
    quadratic : StackedQuadratic or None
    implicit : bool
    """

    def __init__(self, params, lrs, momenta, buffer, quadratic, implicit):
        self.params = params
        self.lr = _per_copy(lrs, params)
        self.momentum = _per_copy(momenta, params) if any(momenta) else None
        self.buffer = buffer
        self.quadratic = quadratic
        self.implicit = implicit and quadratic is not None
        if self.implicit:
            # theta' = theta_t - q (theta_t - c), q = a / (1 + a), a = lr W;
            # the momentum buffer gets (theta - theta') / lr: the step's
            # direction plus q / lr (theta_t - c), the penalty's gradient at
            # theta', as ImplicitQuadraticStep does. A copy without a
            # quadratic (zero precision) keeps its parameters and buffer.
            self.shrink = (1 + (self.lr * quadratic.precision).reciprocal()).reciprocal()
            self.shrink_over_lr = self.shrink / self.lr

    @torch.no_grad()
    def step(self, grad):
        """Step every copy with the gradient ``grad`` of its task loss."""
        params, quadratic = self.params, self.quadratic
        if quadratic is not None and not self.implicit:
            grad.addcmul_(quadratic.precision, params - quadratic.centre)
        if self.momentum is None:
            direction = grad
        elif self.buffer is None:
            self.buffer = direction = grad.clone()
        else:
            direction = self.buffer.mul_(self.momentum).add_(grad)
        params.addcmul_(direction, self.lr, value=-1.0)
        if self.implicit:
            offsets = params - quadratic.centre
            params.addcmul_(self.shrink, offsets, value=-1.0)
            if self.momentum is not None:
                self.buffer.addcmul_(self.shrink_over_lr, offsets)
