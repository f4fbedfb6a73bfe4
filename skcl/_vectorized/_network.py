"""K networks of one architecture as one: stacked parameters, one forward pass."""

import copy

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..modules import MLP

# Layers that act on each element alone, whatever the leading dimensions.
_ELEMENTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Identity,
)


class StackedNetwork:
    """The training forward pass of K copies of one network, parameters stacked.

    ``params[i]`` stacks the ``i``-th parameter (in ``named_parameters``
    order) of every copy along a new first dimension, and ``buffers`` the
    buffers likewise. A stack of :class:`skcl.modules.MLP` or of
    ``nn.Sequential`` of linear, elementwise, dropout and flatten layers
    runs as batched matrix products (``torch.baddbmm``); any other module
    runs under ``torch.func.vmap`` of ``functional_call``. Dropout draws the
    masks the copies would draw alone: one mask shared by every copy from
    the global generator (``generators=None``, copies seeded alike, as
    ``vmap(randomness="same")``), or one per copy from its own generator
    (batched path only).

    Parameters
    ----------
    modules : list of nn.Module
        The copies, of one architecture, on one device.
    generators : list of torch.Generator or None
        One generator per copy for its dropout masks, or None.
    """

    def __init__(self, modules, generators=None):
        base = modules[0]
        self.size = len(modules)
        self.names = [name for name, _ in base.named_parameters()]
        self.trainable = [p.requires_grad for p in base.parameters()]
        self.shapes = [p.shape for p in base.parameters() if p.requires_grad]
        self.sizes = [shape.numel() for shape in self.shapes]
        # The trainable parameters are views of one (K, P) tensor, so that
        # the optimizer steps every copy and parameter in a few operations.
        self.flat = torch.cat(
            [
                torch.stack([p.detach().reshape(-1) for p in ps], dim=0)
                for ps in zip(*(m.parameters() for m in modules), strict=True)
                if ps[0].requires_grad
            ],
            dim=1,
        )
        views = iter(self.split(self.flat))
        self.params = [
            next(views).requires_grad_()
            if trainable
            else torch.stack([p.detach() for p in ps])
            for ps, trainable in zip(
                zip(*(m.parameters() for m in modules), strict=True),
                self.trainable,
                strict=True,
            )
        ]
        self.buffer_names = [name for name, _ in base.named_buffers()]
        self.buffers = [
            torch.stack(list(bs)) for bs in zip(*(m.buffers() for m in modules))
        ]
        self.generators = generators
        self.plan = _batched_plan(base)
        if self.plan is None:
            if generators is not None:
                raise ValueError(
                    "differently seeded copies draw their own dropout masks, which "
                    "only the batched path of MLPs and nn.Sequential can do"
                )
            self._vmapped = _vmapped(base)

    def split(self, flat):
        """Views of a ``(K, P)`` tensor as the trainable parameters ``(K, ...)``."""
        parts = flat.split(self.sizes, dim=1)
        return [
            part.view(self.size, *shape)
            for part, shape in zip(parts, self.shapes, strict=True)
        ]

    def flatten(self, tensors):
        """One ``(K, P)`` tensor of per-parameter ``(K, ...)`` tensors."""
        return torch.cat([t.reshape(self.size, -1) for t in tensors], dim=1)

    @property
    def batched(self):
        """Whether the copies run as batched matrix products (not vmap)."""
        return self.plan is not None

    def __call__(self, X, shared):
        """Return the copies' outputs ``(K, n, ...)`` in training mode.

        ``X`` is one batch ``(n, ...)`` for every copy (``shared``) or one
        per copy ``(K, n, ...)``.
        """
        if self.plan is None:
            return self._vmapped(self.params, self.buffers, X, shared)
        h = X
        for kind, layer, rows in self.plan:
            if kind == "linear":
                h = _linear(h, shared, *(self.params[i] for i in rows))
                shared = False
            elif kind == "flatten":
                h = h.flatten(1 if shared else 2)
            elif kind == "dropout":
                if shared and self.generators is not None and 0 < layer.p < 1:
                    h, shared = h.expand(self.size, *h.shape), False
                h = self._dropout(h, layer.p, shared)
            else:
                h = layer(h)
        return h.expand(self.size, *h.shape) if shared else h

    def _dropout(self, h, p, shared):
        # As torch.nn.functional.dropout: no draw at p 0 or 1.
        if p == 0:
            return h
        if p == 1:
            return h * torch.zeros((), dtype=h.dtype, device=h.device)
        shape = h.shape if shared else h.shape[1:]
        if self.generators is None:
            noise = h.new_empty(shape).bernoulli_(1 - p)
        else:
            noise = torch.stack(
                [h.new_empty(shape).bernoulli_(1 - p, generator=g) for g in self.generators]
            )
        return h * noise.div_(1 - p)

    @torch.no_grad()
    def copy_to(self, modules):
        """Write each copy's parameters and buffers into ``modules``."""
        for k, module in enumerate(modules):
            for p, stacked in zip(module.parameters(), self.params, strict=True):
                p.copy_(stacked[k])
            for b, stacked in zip(module.buffers(), self.buffers, strict=True):
                b.copy_(stacked[k])


def _linear(h, shared, weight, bias=None):
    """``h @ W.T + b`` per copy: ``h`` is ``(n, in)`` (shared) or ``(K, n, in)``."""
    if shared:
        K, out, width = weight.shape
        flat = weight.reshape(K * out, width).T
        h = h @ flat if bias is None else torch.addmm(bias.reshape(-1), h, flat)
        return h.view(len(h), K, out).transpose(0, 1)
    if bias is None:
        return torch.bmm(h, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def _batched_plan(module):
    """Return the layers of ``module`` as ``(kind, layer, parameter rows)``, or None.

    None when ``module`` is not an MLP or a (nested) ``nn.Sequential`` of
    linear, elementwise, dropout and flatten layers.
    """
    if type(module) is MLP:
        plan = _batched_plan(module.layers)
        return None if plan is None else [("flatten", nn.Flatten(), ()), *plan]
    layers = _leaves(module)
    if layers is None:
        return None
    index = {id(p): i for i, p in enumerate(module.parameters())}
    plan = []
    for layer in layers:
        if type(layer) is nn.Linear:
            rows = [index[id(layer.weight)]]
            if layer.bias is not None:
                rows.append(index[id(layer.bias)])
            plan.append(("linear", layer, rows))
        elif type(layer) is nn.Flatten and (layer.start_dim, layer.end_dim) == (1, -1):
            plan.append(("flatten", layer, ()))
        elif type(layer) is nn.Dropout:
            plan.append(("dropout", layer, ()))
        elif type(layer) in _ELEMENTWISE:
            plan.append(("elementwise", layer, ()))
        else:
            return None
    return plan


def _leaves(module):
    if type(module) is not nn.Sequential:
        return [module]
    return [leaf for child in module for leaf in _leaves(child)]


def _vmapped(base):
    base = copy.deepcopy(base)
    base.train()
    names = [name for name, _ in base.named_parameters()]
    buffer_names = [name for name, _ in base.named_buffers()]

    def forward(params, buffers, X):
        state = {**dict(zip(names, params)), **dict(zip(buffer_names, buffers))}
        return functional_call(base, state, (X,))

    shared_forward = vmap(forward, in_dims=(0, 0, None), randomness="same")
    own_forward = vmap(forward, in_dims=(0, 0, 0), randomness="same")
    return lambda params, buffers, X, shared: (
        shared_forward if shared else own_forward
    )(params, buffers, X)
