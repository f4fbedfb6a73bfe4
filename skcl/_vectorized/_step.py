"""SGD with each copy's learning rate and momentum, and each copy's quadratics."""

import torch

from ..penalties._implicit import fold_quadratics

# Elements of one column block of the (K, P) tensors: 256 KiB of float32.
_BLOCK_ELEMENTS = 65536


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
    optimizer's (``implicit=True``). The state is ``(K, P)``: the copies'
    trainable parameters side by side. A large network steps in column
    blocks that fit the caches, each reading its tensors once.

    Parameters
    ----------
    params : Tensor
        The stacked parameters, updated in place.
    sizes : list of int
        The number of columns of each parameter, in order.
    lrs, momenta : list of float
        Each copy's learning rate and momentum.
    buffer : Tensor or None
        The stacked momentum buffers, or None before the first step.
    quadratic : StackedQuadratic or None
    implicit : bool
    """

    def __init__(self, params, sizes, lrs, momenta, buffer, quadratic, implicit):
        self.params = params
        self.lr = _per_copy(lrs, params)
        self.momentum = _per_copy(momenta, params) if any(momenta) else None
        self.fresh = self.momentum is not None and buffer is None
        if self.fresh:
            buffer = torch.zeros_like(params)
        self.buffer = buffer
        self.implicit = implicit and quadratic is not None
        self.explicit = quadratic is not None and not self.implicit
        state = {"params": params, "buffer": buffer}
        if quadratic is not None:
            state.update(centre=quadratic.centre, precision=quadratic.precision)
        if self.implicit:
            # theta' = theta_t - q (theta_t - c), q = a / (1 + a), a = lr W;
            # the momentum buffer gets (theta - theta') / lr: the step's
            # direction plus q / lr (theta_t - c), the penalty's gradient at
            # theta', as ImplicitQuadraticStep does. A copy without a
            # quadratic (zero precision) keeps its parameters and buffer.
            shrink = (1 + (self.lr * quadratic.precision).reciprocal()).reciprocal()
            state.update(shrink=shrink, shrink_over_lr=shrink / self.lr)
        K, P = params.shape
        self.whole = K * P <= _BLOCK_ELEMENTS
        width = P if self.whole else max(1, _BLOCK_ELEMENTS // K)
        spans = [(None, slice(0, P), None)] if self.whole else _spans(sizes, width)
        self.blocks = [
            (i, own, {k: None if v is None else v[:, flat] for k, v in state.items()})
            for i, flat, own in spans
        ]

    @torch.no_grad()
    def step(self, grads):
        """Step every copy with its task loss's gradients ``grads`` ``(K, ...)``."""
        K = len(self.params)
        if self.whole:
            flat = torch.cat([g.reshape(K, -1) for g in grads], dim=1)
        else:
            flat = [g.reshape(K, -1) for g in grads]
        for i, columns, state in self.blocks:
            self._step(state, flat if i is None else flat[i][:, columns])
        self.fresh = False

    def _step(self, state, grad):
        params = state["params"]
        if self.explicit:
            grad.addcmul_(state["precision"], params - state["centre"])
        if self.momentum is None:
            direction = grad
        elif self.fresh:
            direction = state["buffer"].copy_(grad)
        else:
            direction = state["buffer"].mul_(self.momentum).add_(grad)
        params.addcmul_(direction, self.lr, value=-1.0)
        if self.implicit:
            offsets = params - state["centre"]
            params.addcmul_(state["shrink"], offsets, value=-1.0)
            if self.momentum is not None:
                direction.addcmul_(state["shrink_over_lr"], offsets)


def _spans(sizes, width):
    """Blocks of at most ``width`` columns: ``(parameter, columns in the
    (K, P) tensors, columns in the parameter's)``."""
    spans, start = [], 0
    for i, size in enumerate(sizes):
        for lo in range(0, size, width):
            hi = min(lo + width, size)
            spans.append((i, slice(start + lo, start + hi), slice(lo, hi)))
        start += size
    return spans
