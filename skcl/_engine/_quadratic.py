"""Each copy's quadratic penalties, folded and stacked."""

import torch

from ..penalties._implicit import fold_quadratics


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
