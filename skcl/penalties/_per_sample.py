"""Means over samples of a function of per-sample gradients, from batched passes.

For every sample ``x_n`` with output ``z_n`` and a few cotangent vectors
``v_{n,1}, ..., v_{n,K}`` (the gradient of a per-sample loss with respect to
``z_n``, or the columns of a factor of its expected Hessian), the engine returns,
for each trainable parameter ``theta``,

    1/N sum_n sum_k phi(J_n^T v_{n,k}),    J_n = d z_n / d theta,

with ``phi`` the elementwise square or absolute value, without looping over
samples where it can avoid it:

- ``nn.Linear`` and ``nn.Conv2d`` layers (the fast path): one batched forward
  per chunk records each layer's input ``a`` and output; one backward per
  cotangent gives the gradients ``g`` with respect to the outputs, which are
  per-sample because the cotangents are. The per-sample weight gradient of a
  Linear layer fed ``(n, features)`` is the outer product ``g_n a_n^T``, and
  ``phi`` (square or absolute value) is multiplicative, so the sum over samples
  is ``phi(g)^T phi(a)``: one matrix product, nothing per-sample materialised.
  A layer called several times, fed extra dimensions ``(n, *, features)``, a
  Conv2d layer (whose per-sample gradient sums over positions) and a parameter
  shared between layers get their per-sample gradients materialised (``bmm`` /
  ``unfold`` and ``einsum``) before ``phi``.
- Every other trainable parameter (LayerNorm, Embedding, BatchNorm, a module's
  own ``nn.Parameter``, a parameter shared with such a module, a subclass of
  Linear/Conv2d) goes through ``torch.func``: ``vmap`` over the samples of a
  ``vjp`` of the functional forward, differentiating only those parameters; a
  loop over samples if ``vmap`` cannot handle the module. A network mixing
  both runs the fast path for its Linear/Conv2d parameters and the fallback
  for the rest, so every parameter is exact.

The fast path assumes what the Fisher assumes anyway: samples go through the
network independently, along the first axis of every Linear/Conv2d input. A
layer that sees a first axis of another length (a module that folds a sequence
axis into the batch, say) sends the whole network to the fallback.
"""

import numbers
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vjp, vmap

_FAST_LAYERS = (nn.Linear, nn.Conv2d)
_REDUCTIONS = {"square": torch.square, "abs": torch.abs}
_VMAP_ELEMENTS = 2**21


class _NotPerSample(Exception):
    """A Linear/Conv2d layer saw inputs whose first axis is not the samples."""


@contextmanager
def eval_mode(module):
    """Put ``module`` in eval mode; restore each submodule's mode on exit."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


@contextmanager
def _capture(layers, n_samples):
    calls = {m: [] for m in layers}

    def hook(m, args, out):
        if args[0].shape[0] != n_samples:
            raise _NotPerSample
        calls[m].append((args[0].detach(), out))
        # A later in-place op (ReLU(inplace=True)) must not alter the output
        # the gradients are taken with respect to.
        return out.clone()

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _layer_inputs(layer, a):
    """Lay out a Linear/Conv2d input so per-sample gradients are one batched product."""
    n = len(a)
    if isinstance(layer, nn.Linear):
        return a.reshape(n, -1, a.shape[-1])
    mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
    a = F.pad(a, layer._reversed_padding_repeated_twice, mode=mode)
    cols = F.unfold(a, layer.kernel_size, dilation=layer.dilation, stride=layer.stride)
    return cols.reshape(n, layer.groups, -1, cols.shape[-1])


def _layer_gradients(layer, inputs, g):
    """Per-sample gradients of a Linear/Conv2d call from its laid-out input."""
    n = len(g)
    if isinstance(layer, nn.Linear):
        g = g.reshape(n, -1, g.shape[-1])
        return {"weight": torch.bmm(g.transpose(1, 2), inputs), "bias": g.sum(1)}
    g_cols = g.reshape(*inputs.shape[:2], -1, inputs.shape[-1])
    weight = torch.einsum("ngol,ngil->ngoi", g_cols, inputs)
    return {"weight": weight.reshape(n, *layer.weight.shape), "bias": g.sum((2, 3))}


def _accumulate_fast(sums, z, cotangents, calls, names, factored, phi):
    targets = [
        (m, a, out) for m, layer_calls in calls.items() for a, out in layer_calls
    ]
    if not targets:
        return
    factored = {m for m in factored if len(calls[m]) == 1 and calls[m][0][0].dim() == 2}
    inputs = [None if m in factored else _layer_inputs(m, a) for m, a, _ in targets]
    phi_g = {}
    for k, v in enumerate(cotangents):
        grads = torch.autograd.grad(
            z,
            [out for _, _, out in targets],
            v,
            retain_graph=k < len(cotangents) - 1,
            allow_unused=True,
        )
        per_sample = {}
        for (m, _, _), laid_out, g in zip(targets, inputs, grads, strict=True):
            if g is None:
                continue
            if m in factored:
                if m in phi_g:
                    phi_g[m] += phi(g)
                else:
                    phi_g[m] = phi(g)
                continue
            for attr, grad in _layer_gradients(m, laid_out, g).items():
                name = names.get(id(getattr(m, attr)))
                if name is not None:
                    per_sample[name] = (
                        per_sample[name] + grad if name in per_sample else grad
                    )
        for name, grad in per_sample.items():
            sums[name] += phi(grad).sum(0)
    for m, g in phi_g.items():
        if id(m.weight) in names:
            sums[names[id(m.weight)]] += g.T @ phi(calls[m][0][0])
        if id(m.bias) in names:
            sums[names[id(m.bias)]] += g.sum(0)


def _accumulate_fallback(sums, forward, params, x, cotangents, phi):
    primals = {name: p.detach() for name, p in params.items()}

    def sample(xn, vn):
        _, pull = vjp(lambda p: forward(p, xn[None]), primals)
        totals = {name: 0 for name in primals}
        for v in vn:
            (grads,) = pull(v[None])
            for name, g in grads.items():
                totals[name] = totals[name] + phi(g)
        return totals

    # vmap materialises every per-sample gradient: bound the elements per call.
    size = len(cotangents) * sum(p.numel() for p in primals.values())
    step = max(1, _VMAP_ELEMENTS // max(1, size))
    for start in range(0, len(x), step):
        try:
            with torch.no_grad():
                totals = vmap(sample, in_dims=(0, 1))(
                    x[start : start + step], cotangents[:, start : start + step]
                )
        except RuntimeError:  # e.g. data-dependent control flow
            _accumulate_loop(
                sums, forward, params, x[start:], cotangents[:, start:], phi
            )
            return
        for name, total in totals.items():
            sums[name] += total.sum(0)


def _accumulate_loop(sums, forward, params, x, cotangents, phi):
    tensors = list(params.values())
    for xn, vn in zip(x, cotangents.transpose(0, 1), strict=True):
        with torch.enable_grad():
            zn = forward(None, xn[None])
        for k, v in enumerate(vn):
            grads = torch.autograd.grad(
                zn, tensors, v[None], retain_graph=k < len(vn) - 1, allow_unused=True
            )
            for name, g in zip(params, grads, strict=True):
                if g is not None:
                    sums[name] += phi(g)


def _plan(module, fast):
    """Split the trainable parameters between the fast path and the fallback."""
    params = {name: p for name, p in module.named_parameters() if p.requires_grad}
    owners = {}
    for m in module.modules():
        for p in m.parameters(recurse=False):
            owners.setdefault(id(p), []).append(m)
    fast_names = {
        id(p): name
        for name, p in params.items()
        if fast and all(type(m) in _FAST_LAYERS for m in owners[id(p)])
    }
    layers = [
        m
        for m in module.modules()
        if any(id(p) in fast_names for p in m.parameters(recurse=False))
    ]
    factored = {
        m
        for m in layers
        if isinstance(m, nn.Linear)
        and all(len(owners[id(p)]) == 1 for p in m.parameters(recurse=False))
    }
    slow = {name: p for name, p in params.items() if id(p) not in fast_names}
    return params, fast_names, layers, factored, slow


def _run(module, X, cotangents, phi, batch_size, output_transform, fast):
    params, names, layers, factored, slow = _plan(module, fast)

    def forward(p, x):
        z = module(x) if p is None else functional_call(module, p, (x,))
        return z if output_transform is None else output_transform(z)

    sums = {
        name: torch.zeros_like(p, memory_format=torch.contiguous_format)
        for name, p in params.items()
    }
    step = len(X) if batch_size is None else batch_size
    for start in range(0, len(X), step):
        x = X[start : start + step]
        with _capture(layers, len(x)) as calls, torch.set_grad_enabled(bool(layers)):
            z = forward(None, x)
        v = cotangents(z.detach(), start)
        if layers:
            _accumulate_fast(sums, z, v, calls, names, factored, phi)
        if slow and len(v):
            _accumulate_fallback(sums, forward, slow, x, v, phi)
    return {name: total.div_(len(X)) for name, total in sums.items()}


def per_sample_gradient_means(
    module,
    X,
    cotangents,
    *,
    reduction,
    batch_size=None,
    output_transform=None,
    fast=True,
):
    """Mean over samples of ``reduction`` of per-sample vector-Jacobian products.

    Parameters
    ----------
    module : torch.nn.Module
        The network; it is in eval mode during the computation and each
        submodule's mode is restored afterwards, even on error.
    X : Tensor
        The inputs, on the module's device, samples along the first axis.
    cotangents : callable
        ``cotangents(z, start)`` receives the detached outputs ``z`` of the
        chunk that starts at sample ``start`` and returns the cotangents, a
        tensor of shape ``(K, len(z), *z.shape[1:])``.
    reduction : {"square", "abs"}
        The elementwise function of each per-sample gradient.
    batch_size : int or None, default=None
        Samples per chunk; None processes all samples at once.
    output_transform : callable or None, default=None
        Applied to the module's output before the cotangents.
    fast : bool, default=True
        False sends every parameter to the ``torch.func`` fallback (for
        benchmarks and tests).

    Returns
    -------
    dict of str to Tensor
        For each trainable parameter (``requires_grad=True``; the others are
        left out), ``1/N sum_n sum_k reduction(J_n^T v_{n,k})``, shaped like
        the parameter, on its device.
    """
    phi = _REDUCTIONS[reduction]
    with eval_mode(module):
        try:
            return _run(module, X, cotangents, phi, batch_size, output_transform, fast)
        except _NotPerSample:
            return _run(module, X, cotangents, phi, batch_size, output_transform, False)


def check_inputs(module, X, batch_size, output_transform):
    """Check the shared arguments; return ``X`` as a tensor on the module's device."""
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module, got {type(module).__name__}."
        )
    if batch_size is not None and (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(
            f"batch_size must be None or a positive int, got {batch_size!r}."
        )
    if output_transform is not None and not callable(output_transform):
        raise TypeError(
            f"output_transform must be None or callable, got {output_transform!r}."
        )
    reference = next(module.parameters(), None)
    X = torch.as_tensor(X, device=None if reference is None else reference.device)
    if X.dim() == 0 or len(X) == 0:
        raise ValueError(
            f"X must hold at least one sample, got shape {tuple(X.shape)}."
        )
    if reference is not None and X.is_floating_point():
        X = X.to(reference.dtype)
    return X
