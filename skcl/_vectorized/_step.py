"""SGD with each copy's learning rate and momentum, and each copy's quadratics."""

import torch

from ..penalties._implicit import fold_quadratics


def _per_copy(values, like):
    """``values`` (one per copy) as a tensor that broadcasts over ``like``."""
    shape = (len(values),) + (1,) * (like.dim() - 1)
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)


class StackedQuadratic:
    """The folded quadratic penalties of every copy: precision and centre.

    A copy without an active quadratic has zero precision.
    """

    def __init__(self, precision, centre):
        self.precision, self.centre = precision, centre

    @classmethod
    def of(cls, params, forms):
        """Fold each copy's ``forms``; ``params[i][k]`` is copy ``k``'s tensor ``i``.

        Returns the stacked quadratic (None if no copy has one) and, per copy,
        the FloatingPointError of a non-finite precision (else None).
        """
        if not any(forms):
            return None, [None] * len(forms)
        precisions, centres, errors = [], [], []
        for k, copy_forms in enumerate(forms):
            own = [p[k] for p in params]
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
        stack = lambda per_copy: [torch.stack(ts) for ts in zip(*per_copy)]  # noqa: E731
        return cls(stack(precisions), stack(centres)), errors


class StackedSGD:
    """``torch.optim.SGD`` (no dampening, Nesterov or weight decay) per copy.

    Each copy steps with its own learning rate and momentum; a copy's
    quadratic penalties are added to its gradient (``implicit=False``) or
    applied as the implicit step of :class:`skcl.penalties._implicit.
    ImplicitQuadraticStep` after the optimizer's (``implicit=True``).

    Parameters
    ----------
    params : list of Tensor
        The trainable stacked parameters ``(K, ...)``.
    lrs, momenta : list of float
        Each copy's learning rate and momentum.
    buffers : list of Tensor or None
        The stacked momentum buffers, or None before the first step.
    quadratic : StackedQuadratic or None
    implicit : bool
    """

    def __init__(self, params, lrs, momenta, buffers, quadratic, implicit):
        self.params = params
        self.lr = [_per_copy(lrs, p) for p in params]
        self.inverse_lr = [_per_copy([1.0 / lr for lr in lrs], p) for p in params]
        self.momentum = (
            [_per_copy(momenta, p) for p in params] if any(momenta) else None
        )
        self.buffers = buffers
        self.quadratic = quadratic
        self.implicit = implicit and quadratic is not None
        if self.implicit:
            # theta' = theta_t - q (theta_t - c), q = a / (1 + a), a = lr W.
            self.shrink = [
                (1 + (lr * w).reciprocal()).reciprocal()
                for lr, w in zip(self.lr, quadratic.precision, strict=True)
            ]
            # The momentum buffer gets (theta - theta') / lr: the step's
            # direction plus q / lr (theta_t - c), the penalty's gradient at
            # theta', as ImplicitQuadraticStep does. A copy without a
            # quadratic (zero precision) keeps its parameters and buffer.
            self.shrink_over_lr = torch._foreach_mul(self.shrink, self.inverse_lr)

    @torch.no_grad()
    def step(self, grads):
        """Step every copy with the gradients ``grads`` of its task loss."""
        params, quadratic = self.params, self.quadratic
        if quadratic is not None and not self.implicit:
            diffs = torch._foreach_sub(params, quadratic.centre)
            torch._foreach_addcmul_(grads, quadratic.precision, diffs)
        if self.momentum is None:
            direction = grads
        elif self.buffers is None:
            self.buffers = direction = [g.clone() for g in grads]
        else:
            torch._foreach_mul_(self.buffers, self.momentum)
            torch._foreach_add_(self.buffers, grads)
            direction = self.buffers
        torch._foreach_addcmul_(params, direction, self.lr, value=-1.0)
        if not self.implicit:
            return
        offsets = torch._foreach_sub(params, quadratic.centre)
        torch._foreach_addcmul_(params, self.shrink, offsets, value=-1.0)
        if self.momentum is not None:
            torch._foreach_addcmul_(self.buffers, self.shrink_over_lr, offsets)
