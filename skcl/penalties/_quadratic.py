"""Quadratic penalties: lam/2 * sum_j w_j (theta_j - c_j)^2 + constant."""

import math

import torch

from .._constraints import STRENGTH
from .._plugin import check_finite
from ._base import Penalty


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

    Examples
    --------
    >>> import torch
    >>> from skcl.penalties import quadratic_penalty
    >>> theta = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> weights = [torch.tensor([1.0, 0.5])]
    >>> value = quadratic_penalty([theta], [torch.zeros(2)], 2.0, weights)
    >>> value.item()  # 2/2 * (1 * 1 + 0.5 * 4)
    3.0
    >>> value.backward(); theta.grad  # 2 * w * theta
    tensor([2., 2.])
    """
    return _Quadratic.apply(float(lam), list(centres), weights, *params)


def trainable_parameters(net):
    """Return the trainable ``(name, parameter)`` pairs of ``net.module_``."""
    return [(n, p) for n, p in net.module_.named_parameters() if p.requires_grad]


def detached_copy(net):
    """Return a detached copy of the trainable parameters, on their device."""
    return [p.detach().clone() for _, p in trainable_parameters(net)]


def check_parameter_list(value, net, where, *, nonnegative=False):
    """Raise ValueError naming ``where`` unless ``value`` fits the parameters.

    ``value`` must be None or a list of finite tensors (>= 0 with
    ``nonnegative``), one per trainable parameter of ``net.module_``, each of
    its shape and dtype, as a penalty's centres and precisions are.
    """
    if value is None:
        return
    params = [p for _, p in trainable_parameters(net)]
    if not isinstance(value, (list, tuple)) or len(value) != len(params):
        raise ValueError(
            f"{where} should be a list of {len(params)} tensors, one per trainable "
            "parameter."
        )
    for i, (tensor, param) in enumerate(zip(value, params, strict=True)):
        if not (
            isinstance(tensor, torch.Tensor)
            and tensor.shape == param.shape
            and tensor.dtype == param.dtype
        ):
            raise ValueError(
                f"{where}[{i}] should be a {param.dtype} tensor of shape "
                f"{tuple(param.shape)}."
            )
        check_finite(tensor, f"{where}[{i}]", nonnegative=nonnegative)


def check_number(value, where, *, integral=False):
    """Raise ValueError naming ``where`` unless ``value`` is a finite number >= 0."""
    kind = int if integral else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not math.isfinite(value)
        or value < 0
    ):
        words = "an int" if integral else "a finite number"
        raise ValueError(f"{where} should be {words} >= 0, got {value!r}.")


def output_mask_transform(net):
    """Return a function that masks outputs to the current task's, or None."""
    mask = net.output_mask_
    if mask is None:
        return None
    return lambda out: out.masked_fill(~mask, float("-inf"))


def likelihood(net):
    """Name the log-likelihood that matches the net's training criterion."""
    if isinstance(net.criterion_, torch.nn.CrossEntropyLoss):
        return "cross_entropy"
    if isinstance(net.criterion_, torch.nn.MSELoss):
        return "mse"
    raise TypeError(
        "The importance of a parameter needs a cross-entropy or squared-error "
        f"criterion, got {type(net.criterion_).__name__}."
    )


class QuadraticPenalty(Penalty):
    """Base of the penalties ``lam/2 * sum_j w_j (theta_j - c_j)^2 + lam/2 * b``.

    L2, L2Init, EWC, SI and MAS are all of this form, with their own centre
    ``c``, precision ``w`` and constant ``b``. A subclass has a ``lam``
    parameter and implements :meth:`quadratic`; :meth:`loss` follows. The
    estimators do not backpropagate through :meth:`loss` while training.
    With ``penalty_step="implicit"`` (the default) they apply the quadratic
    exactly after the optimizer's step on the task loss, a proximal step that
    no strength can make diverge; :meth:`quadratic` is then read once per
    chunk, so its centre and weights must not change while a chunk trains.
    With ``penalty_step="explicit"`` they add the gradient
    ``lam * w * (theta - c)`` to the parameters' gradients in place
    (:meth:`add_gradient`).

    Examples
    --------
    A pull toward zero weighted by a fixed mask, in a few lines:

    >>> import numpy as np
    >>> import torch
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import QuadraticPenalty
    >>> class ZeroPull(QuadraticPenalty):
    ...     def __init__(self, *, lam=1.0):
    ...         self.lam = lam
    ...     def quadratic(self, net):
    ...         zeros = [torch.zeros_like(p) for p in net.module_.parameters()]
    ...         return zeros, None, 0.0
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(penalty=ZeroPull(lam=0.1), max_epochs=1).fit(X, y)
    >>> clf.penalty_.loss(clf.net_).item() > 0
    True
    """

    _parameter_constraints: dict = {"lam": [STRENGTH]}  # noqa: RUF012

    def quadratic(self, net):
        """Return ``(centres, weights, b)`` (weights None for all ones), or None."""
        return None

    def check_state(self, net, X, y):
        """Also check that the quadratic's centres and weights fit the parameters.

        The weights (precisions) must be >= 0: a negative one would push the
        parameters away from their centre without bound.
        """
        super().check_state(net, X, y)
        form = self.quadratic(net)
        if form is None:
            return
        centres, weights, offset = form
        name = type(self).__name__
        if centres is None:
            raise ValueError(f"{name} has weights but no centre.")
        check_parameter_list(centres, net, f"{name}'s centre")
        check_parameter_list(weights, net, f"{name}'s weights", nonnegative=True)
        check_number(offset, f"{name}'s offset")

    def active_quadratic(self, net):
        """Return ``quadratic(net)``, or None when there is no term (or lam is 0)."""
        form = self.quadratic(net)
        return None if form is None or self.lam == 0 else form

    def loss(self, net, step=None):
        """Return the quadratic's value at the current parameters (any ``step``)."""
        form = self.active_quadratic(net)
        if form is None:
            return None
        centres, weights, offset = form
        params = [p for _, p in trainable_parameters(net)]
        value = quadratic_penalty(params, centres, self.lam, weights)
        return value + 0.5 * self.lam * offset if offset else value

    @torch.no_grad()
    def add_gradient(self, net, params, workspace):
        """Add ``lam * w * (theta - c)`` to the ``.grad`` of ``params``.

        ``params`` are the trainable parameters (with gradients, in order)
        and ``workspace`` tensors shaped like them, overwritten.
        """
        form = self.active_quadratic(net)
        if form is None:
            return
        centres, weights, _ = form
        for buffer, p, c in zip(workspace, params, centres, strict=True):
            torch.sub(p, c, out=buffer)
        grads = [p.grad for p in params]
        if weights is None:
            torch._foreach_add_(grads, workspace, alpha=self.lam)
        else:
            torch._foreach_addcmul_(grads, weights, workspace, value=self.lam)
