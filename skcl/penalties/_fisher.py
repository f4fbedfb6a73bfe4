"""Diagonal Fisher information from per-sample gradients."""

import numbers

import torch
import torch.nn.functional as F

from ._per_sample import check_inputs, per_sample_gradient_means

_FISHERS = ("empirical", "true", "sampled")


def _cross_entropy(z, y):
    return F.cross_entropy(z, y, reduction="none")


def _gaussian_nll(z, y):
    residuals = z - y.reshape(z.shape).to(z.dtype)
    return 0.5 * residuals.square().reshape(len(z), -1).sum(1)


_LOSSES = {"cross_entropy": _cross_entropy, "mse": _gaussian_nll}


def _loss_cotangents(loss, y):
    """Gradients of the per-sample losses with respect to the outputs."""

    def cotangents(z, start):
        z.requires_grad_()
        with torch.enable_grad():
            losses = loss(z, y[start : start + len(z)])
        if losses.dim() == 0 or len(losses) != len(z):
            raise ValueError(
                "loss must return one loss per sample (e.g. reduction='none'), "
                f"got shape {tuple(losses.shape)} for {len(z)} samples."
            )
        (v,) = torch.autograd.grad(losses.sum(), z)
        return v[None]

    return cotangents


def _true_cross_entropy(z, start):
    """Factor ``L`` (C-1 columns) of the logit Hessian ``diag(p) - p p^T = L L^T``.

    With ``q = sqrt(p)``, ``diag(p) - p p^T = D (I - q q^T) D`` for ``D = diag(q)``.
    The Householder reflection ``R = I - 2 w w^T / w^T w``, ``w = q + e_C``,
    maps ``q`` to ``-e_C``, so its first ``C - 1`` columns are an orthonormal
    basis of ``q``'s complement and ``L = D R[:, :C-1]``: one backward pass
    fewer than the ``C`` columns ``sqrt(p_c) (e_c - p)``, and stable since
    ``w^T w >= 2``.
    """
    _check_logits(z)
    q = z.softmax(1).sqrt()
    w = q.clone()
    w[:, -1] += 1
    eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    r = eye - (2 / w.square().sum(1))[:, None, None] * w[:, :, None] * w[:, None, :]
    return (q[:, :, None] * r[:, :, :-1]).permute(2, 0, 1)


def _true_gaussian(z, start):
    """``E_{y ~ N(z, I)} (z - y)(z - y)^T = I``: one unit cotangent per output."""
    d = z[0].numel()
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    return eye.reshape(d, 1, *z.shape[1:]).expand(d, *z.shape)


def _sampled(loss, generator):
    """Cotangents ``d log p(y|x) / dz`` (up to sign) at one ``y`` drawn from p."""

    def cotangents(z, start):
        if loss == "mse":
            return torch.randn(
                z.shape, generator=generator, dtype=z.dtype, device=z.device
            )[None]
        _check_logits(z)
        p = z.softmax(1)
        y = torch.multinomial(p, 1, generator=generator)[:, 0]
        return (p - F.one_hot(y, z.shape[1]).to(z.dtype))[None]

    return cotangents


def _check_logits(z):
    if z.dim() != 2:
        raise ValueError(
            "fisher='true' and 'sampled' with loss='cross_entropy' need outputs "
            f"of shape (n_samples, n_classes), got {tuple(z.shape)}."
        )


def squared_gradients(
    module,
    X,
    y=None,
    *,
    loss="cross_entropy",
    fisher="empirical",
    batch_size=1024,
    output_transform=None,
    random_state=None,
):
    """Diagonal Fisher information: mean squared per-sample log-likelihood gradients.

    ``F_j = 1/N sum_n E_y[(d log p(y | x_n) / d theta_j)^2]``, each square taken
    of one sample's gradient. The square of a mini-batch mean gradient is a
    different quantity (it mostly measures the mean gradient, near zero at a
    minimum) and is not what this computes. Dropout and batch normalization
    run in eval mode; each submodule's training mode is restored afterwards,
    even on error. Parameter gradients (``.grad``) are left untouched.

    Linear and Conv2d layers use one batched forward and backward per chunk
    (Linear layers never materialise per-sample gradients); other
    parameterised layers use ``torch.func.vmap``, or a loop over samples if
    vmap cannot run the module (see ``skcl.penalties._per_sample``).

    Parameters
    ----------
    module : torch.nn.Module
        The network. With ``loss="cross_entropy"`` its outputs (after
        ``output_transform``) are logits of shape ``(n_samples, n_classes)``.
    X : array-like or Tensor
        Inputs, samples along the first axis. Floating inputs are cast to the
        module's dtype and moved to its device.
    y : array-like or Tensor, default=None
        Targets: class indices (cross-entropy) or values shaped like the
        outputs (mse). Needed by ``fisher="empirical"``, ignored otherwise.
    loss : {"cross_entropy", "mse"} or callable, default="cross_entropy"
        The negative log-likelihood ``-log p(y | x)`` up to a constant.
        ``"mse"`` is the unit-variance Gaussian ``0.5 * ||y - f(x)||^2``. A
        callable ``loss(outputs, y)`` must return one loss per sample (e.g.
        ``reduction="none"``); it supports ``fisher="empirical"`` only.
    fisher : {"empirical", "true", "sampled"}, default="empirical"
        ``"empirical"`` uses the given targets. ``"true"`` takes the exact
        expectation over the model's predictive distribution: for
        cross-entropy ``sum_c p(c|x) (d log p(c|x) / d theta)^2``, computed as
        ``n_classes - 1`` backward passes through a factor of the logit
        Hessian; for mse ``E_{y ~ N(f(x), I)}``, which equals
        ``sum_k (d f_k(x) / d theta)^2`` (the Gauss-Newton diagonal), one
        backward pass per output. ``"sampled"`` draws one target per sample
        from the model (a class from the softmax, or ``f(x) + N(0, I)``).
    batch_size : int or None, default=1024
        Samples per chunk: it bounds memory and does not change the result.
        None processes all samples at once.
    output_transform : callable or None, default=None
        Applied to the module's output first, e.g. to pick a head, or
        ``torch.log`` for a module that outputs probabilities.
    random_state : int, torch.Generator or None, default=None
        Source of the draws of ``fisher="sampled"``.

    Returns
    -------
    dict of str to Tensor
        For each trainable parameter (``requires_grad=False`` ones are left
        out), by name, the Fisher diagonal shaped like the parameter, on its
        device.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcl.penalties._fisher import squared_gradients
    >>> net = nn.Linear(3, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.zero_(), net.bias.zero_()
    >>> X, y = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([0])
    >>> fisher = squared_gradients(net, X, y)  # p = (1/2, 1/2): grads -/+ 1/2 * x
    >>> fisher["weight"]
    tensor([[0.2500, 1.0000, 0.0000],
            [0.2500, 1.0000, 0.0000]])
    >>> squared_gradients(net, X, fisher="true")["bias"]
    tensor([0.2500, 0.2500])
    """
    if not (callable(loss) or loss in _LOSSES):
        raise ValueError(
            f"loss must be 'cross_entropy', 'mse' or a callable, got {loss!r}."
        )
    if fisher not in _FISHERS:
        raise ValueError(f"fisher must be one of {_FISHERS}, got {fisher!r}.")
    if fisher != "empirical" and callable(loss):
        raise ValueError(
            f"fisher={fisher!r} needs loss='cross_entropy' or 'mse': the "
            "predictive distribution of a callable loss is unknown."
        )
    if fisher == "empirical" and y is None:
        raise ValueError("y is required with fisher='empirical'.")
    if random_state is not None and not isinstance(
        random_state, numbers.Integral | torch.Generator
    ):
        raise TypeError(
            "random_state must be None, an int or a torch.Generator, got "
            f"{random_state!r}."
        )
    X = check_inputs(module, X, batch_size, output_transform)
    if fisher == "empirical":
        y = torch.as_tensor(y, device=X.device)
        if y.dim() == 0 or len(y) != len(X):
            raise ValueError(
                f"X and y must have the same number of samples, got {len(X)} and "
                f"{tuple(y.shape)}."
            )
        if loss == "cross_entropy":
            y = y.long()
        cotangents = _loss_cotangents(_LOSSES.get(loss, loss), y)
    elif fisher == "true":
        cotangents = _true_cross_entropy if loss == "cross_entropy" else _true_gaussian
    else:
        generator = random_state
        if not isinstance(generator, torch.Generator):
            generator = torch.Generator(device=X.device)
            if random_state is None:
                generator.seed()
            else:
                generator.manual_seed(int(random_state))
        cotangents = _sampled(loss, generator)
    return per_sample_gradient_means(
        module,
        X,
        cotangents,
        reduction="square",
        batch_size=batch_size,
        output_transform=output_transform,
    )
