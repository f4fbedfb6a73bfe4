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
    runs as batched matrix products (``torch.baddbmm``, with the weights
    stored transposed: see :meth:`stack`); any other module
    runs under ``torch.func.vmap`` of ``functional_call``. Dropout draws the
    masks the copies would draw alone: one mask shared by every copy (copies
    seeded alike, as ``vmap(randomness="same")``) from their one generator,
    or, on the batched path, one per copy from its own generator. The vmap
    path draws from torch's global generator, one shared mask: copies
    seeded apart must not draw random numbers there.

    Parameters
    ----------
    modules : list of nn.Module
        The copies, of one architecture, on one device.
    generators : list of torch.Generator or None
        The batched path's dropout masks: one generator per copy (a mask
        each) or one for all (one shared mask); None for torch's global one.
    sample_ndim : int
        The dimensions of one input sample.
    """

    def __init__(self, modules, generators=None, sample_ndim=1):
        base = modules[0]
        self.size = len(modules)
        self.names = [name for name, _ in base.named_parameters()]
        self.plan = _batched_plan(base, sample_ndim)
        # The batched path keeps linear weights as (K, in, out): W.T per copy.
        transposed = {rows[0] for kind, _, rows in self.plan or () if kind == "linear"}
        trainable = [p.requires_grad for p in base.parameters()]
        self._transposed = [i in transposed for i, t in enumerate(trainable) if t]
        copies = [
            [p.detach() for p in m.parameters() if p.requires_grad] for m in modules
        ]
        self.shapes = [self._stacked(i, p).shape for i, p in enumerate(copies[0])]
        self.sizes = [shape.numel() for shape in self.shapes]
        # The trainable parameters are views of one (K, P) tensor, so that
        # the optimizer steps every copy and parameter in a few operations.
        self.flat = self.stack(copies)
        views = iter(self.split(self.flat))
        self.params = [
            next(views).requires_grad_() if t else torch.stack([p.detach() for p in ps])
            for ps, t in zip(
                zip(*(m.parameters() for m in modules), strict=True),
                trainable,
                strict=True,
            )
        ]
        self.buffers = [
            torch.stack(list(bs))
            for bs in zip(*(m.buffers() for m in modules), strict=True)
        ]
        self.generators = generators
        self._shared_masks = generators is None or len(generators) == 1
        if self.plan is None:
            self._vmapped = _vmapped(base)

    def _stacked(self, i, tensor):
        """Trainable parameter ``i``'s ``tensor`` in the stacked layout."""
        return tensor.transpose(-1, -2) if self._transposed[i] else tensor

    def stack(self, copies):
        """One ``(K, P)`` tensor of each copy's list of trainable-parameter tensors."""
        return torch.stack(
            [
                torch.cat([self._stacked(i, t).reshape(-1) for i, t in enumerate(ts)])
                for ts in copies
            ]
        )

    def unstack(self, stacked):
        """Each copy's list of tensors (module layout) of per-parameter ``(K, ...)``."""
        return [
            [self._stacked(i, t[k]) for i, t in enumerate(stacked)]
            for k in range(self.size)
        ]

    def stack_parameterwise(self, copies):
        """Per trainable parameter, the ``(K, ...)`` stack of the copies' tensors."""
        return [
            self._stacked(i, torch.stack(ts)).contiguous()
            for i, ts in enumerate(zip(*copies, strict=True))
        ]

    def split(self, flat):
        """Views of a ``(K, P)`` tensor as the trainable parameters ``(K, ...)``."""
        parts = flat.split(self.sizes, dim=1)
        return [
            part.view(self.size, *shape)
            for part, shape in zip(parts, self.shapes, strict=True)
        ]

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
        return self.forward(X, shared)

    def forward(self, X, shared, tape=None):
        """The batched path's outputs ``(K, n, ...)``; ``tape`` records the pass.

        With a list ``tape``, each layer that a backward pass needs appends
        ``(kind, layer, parameter rows, saved)``: a linear layer its input, a
        dropout its mask, an elementwise layer its output.
        """
        h = X
        for kind, layer, rows in self.plan:
            if kind == "linear":
                if shared:
                    h, shared = h.expand(self.size, *h.shape), False
                saved = h
                weight = self.params[rows[0]]
                h = (
                    torch.bmm(h, weight)
                    if len(rows) == 1
                    else torch.baddbmm(self.params[rows[1]].unsqueeze(1), h, weight)
                )
            elif kind == "flatten":
                h = h.flatten(1 if shared else 2)
                continue
            elif kind == "dropout":
                if shared and not self._shared_masks and 0 < layer.p < 1:
                    h, shared = h.expand(self.size, *h.shape), False
                saved = self.noise(h, layer.p, shared)
                if saved is None:
                    continue
                h = h * saved
            else:
                h = saved = layer(h)
            if tape is not None:
                tape.append((kind, layer, rows, saved))
        return h.expand(self.size, *h.shape) if shared else h

    def noise(self, h, p, shared):
        """Dropout's scaled mask for ``h``, drawn as ``F.dropout`` draws; None at 0.

        One mask for every copy (``shared`` inputs, or one generator for
        all) or one per copy from its generator.
        """
        if p == 0:
            return None
        if p == 1:  # no draw, as torch.nn.functional.dropout
            return torch.zeros((), dtype=h.dtype, device=h.device)
        shape = h.shape if shared else h.shape[1:]
        if self._shared_masks:
            generator = None if self.generators is None else self.generators[0]
            noise = h.new_empty(shape).bernoulli_(1 - p, generator=generator)
        else:
            noise = torch.stack(
                [
                    h.new_empty(shape).bernoulli_(1 - p, generator=g)
                    for g in self.generators
                ]
            )
        return noise.div_(1 - p)

    @torch.no_grad()
    def copy_to(self, modules):
        """Write each copy's parameters and buffers into ``modules``."""
        trained = self.unstack(self.split(self.flat))
        for module, params in zip(modules, trained, strict=True):
            mine = (p for p in module.parameters() if p.requires_grad)
            for p, value in zip(mine, params, strict=True):
                p.copy_(value)
        for k, module in enumerate(modules):
            for b, stacked in zip(module.buffers(), self.buffers, strict=True):
                b.copy_(stacked[k])


def _batched_plan(module, sample_ndim=1):
    """Return the layers of ``module`` as ``(kind, layer, parameter rows)``, or None.

    None when ``module`` is not an MLP or a (nested) ``nn.Sequential`` of
    linear, elementwise, dropout and flatten layers, or when a linear layer
    would see samples of ``sample_ndim`` > 1 dimensions (before a flatten).
    """
    if type(module) is MLP:
        plan = _batched_plan(module.layers)
        return None if plan is None else [("flatten", nn.Flatten(), ()), *plan]
    plan = _layer_plan(module)
    kinds = [kind for kind, _, _ in plan or () if kind in ("linear", "flatten")]
    if sample_ndim > 1 and kinds and kinds[0] == "linear":
        return None
    return plan


def _layer_plan(module):
    layers = _leaves(module)
    if layers is None:
        return None
    index = {id(p): i for i, p in enumerate(module.parameters())}
    plan = []
    for layer in layers:
        if type(layer) is nn.Linear:
            if not all(p.requires_grad for p in layer.parameters()):
                return None  # frozen weights are stacked untransposed: vmap
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
        state = dict(zip([*names, *buffer_names], [*params, *buffers], strict=True))
        return functional_call(base, state, (X,))

    shared_forward = vmap(forward, in_dims=(0, 0, None), randomness="same")
    own_forward = vmap(forward, in_dims=(0, 0, 0), randomness="same")
    return lambda params, buffers, X, shared: (
        shared_forward if shared else own_forward
    )(params, buffers, X)
