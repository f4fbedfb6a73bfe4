"""A fused quadratic penalty: lam/2 * sum_j w_j (theta_j - c_j)^2."""

import torch


class _Quadratic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lam, centres, weights, *params):
        diffs = torch._foreach_sub(params, centres)
        if weights is None:
            scaled = diffs
            value = torch.stack(torch._foreach_norm(diffs)).square().sum()
        else:
            scaled = torch._foreach_mul(diffs, weights)
            value = torch.stack(
                [
                    torch.dot(s.reshape(-1), d.reshape(-1))
                    for s, d in zip(scaled, diffs, strict=True)
                ]
            ).sum()
        ctx.lam = lam
        ctx.scaled = scaled
        return 0.5 * lam * value

    @staticmethod
    def backward(ctx, grad_output):
        grads = torch._foreach_mul(ctx.scaled, grad_output * ctx.lam)
        return (None, None, None, *grads)


def quadratic_penalty(params, centres, lam, weights=None):
    """Return ``lam/2 * sum(w * (p - c)**2)`` over lists of tensors.

    One autograd node whose backward is ``lam * w * (p - c)``, computed with
    multi-tensor kernels: far cheaper per step than the elementwise graph that
    ``sum(((p - c) ** 2).sum() ...)`` builds.

    Parameters
    ----------
    params : list of Tensor
        The parameters, in the order of ``centres``.
    centres : list of Tensor
        The anchors, one per parameter.
    lam : float
        The strength.
    weights : list of Tensor or None
        Per-element precisions; None means all ones.

    Returns
    -------
    Tensor
        A scalar.
    """
    return _Quadratic.apply(float(lam), list(centres), weights, *params)


def trainable_parameters(net):
    """Return the trainable ``(name, parameter)`` pairs of ``net.module_``."""
    return [(n, p) for n, p in net.module_.named_parameters() if p.requires_grad]


def detached_copy(net):
    """Return a detached copy of the trainable parameters, on their device."""
    return [p.detach().clone() for _, p in trainable_parameters(net)]
