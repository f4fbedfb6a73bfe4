"""One chunk of the current task, trained by K nets at once."""

import copy

import torch

from .._hooks import Hooks
from .._plugin import Step, mask_outputs
from ._by_hand import by_hand
from ._network import StackedNetwork
from ._step import StackedQuadratic, StackedSGD

STEP_HOOKS = (
    "before_forward",
    "loss",
    "after_task_backward",
    "after_backward",
    "after_step",
)
# The per-step hooks that a stackable plug-in may have.
STACKED_HOOKS = ("after_task_backward", "after_step")


def train_together(
    nets,
    X,
    y,
    *,
    epochs,
    batch_size,
    lrs,
    momenta,
    penalty_step,
    output_mask,
    generators,
    dropout_generators=None,
):
    """Train ``nets`` on their current chunk as :meth:`train_chunk` would, stacked.

    The nets share the chunk ``X``, ``y``, the number of epochs, the batch
    size and the output mask; each has its own learning rate, momentum
    (None keeps the optimizer's), quadratic penalties and ``generators``
    entry, the generator of its batch order (one generator for every net:
    they share the order). Their parameters, momentum buffers, plug-in state
    and histories end as :meth:`train_chunk` would leave them.

    Returns
    -------
    list
        Per net, None or the FloatingPointError that stopped it (its net is
        then left as it is).
    """
    K = len(nets)
    for net, lr, momentum in zip(nets, lrs, momenta, strict=True):
        net.output_mask_ = output_mask
        net.set_step_sizes(lr, momentum)
        net.notify("on_train_begin", X=X, y=y)
    hooks = [Hooks(net.plugins_) for net in nets]
    network = StackedNetwork([net.module_ for net in nets], dropout_generators)
    quadratic, errors = None, [None] * K
    if any(h.quadratic for h in hooks):
        forms = [net.quadratic_forms(h) for net, h in zip(nets, hooks, strict=True)]
        quadratic, errors = StackedQuadratic.of(network, forms)
    groups = [net.optimizer_.param_groups[0] for net in nets]
    momenta = [float(group["momentum"]) for group in groups]
    sgd = StackedSGD(
        network.flat,
        network.sizes,
        [float(group["lr"]) for group in groups],
        momenta,
        _stacked_buffer(nets, network),
        quadratic,
        implicit=penalty_step == "implicit",
    )
    plugins = StackedPlugins(nets, network)
    criterion = copy.copy(nets[0].criterion_)
    criterion.reduction = "none"
    orders = _Orders(generators, len(X), X.device)
    for _ in range(epochs):
        for net in nets:
            net.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
        losses = _train_epoch(
            network,
            sgd,
            plugins,
            criterion,
            X,
            y,
            orders.draw(),
            batch_size,
            output_mask,
        )
        network.copy_to([net.module_ for net in nets])
        for k, net in enumerate(nets):
            if errors[k] is None:
                errors[k] = _caught(net.end_epoch, losses[k].item(), 0.0, hooks[k])
    _write_buffers(nets, network, sgd.buffer, momenta)
    plugins.write_back()
    for k, net in enumerate(nets):
        if errors[k] is None:
            errors[k] = _caught(net._check_finite_outputs, X[:batch_size])
        if errors[k] is None:
            net.notify("on_train_end", X=X, y=y)
    return errors


def _caught(method, *args):
    try:
        method(*args)
    except FloatingPointError as error:
        return error
    return None


def _train_epoch(network, sgd, plugins, criterion, X, y, order, batch_size, mask):
    """Train one epoch; return each copy's mean task loss ``(K,)``."""
    K, shared = network.size, order.dim() == 1
    hand = by_hand(network, criterion)
    params = [p for p in network.params if p.requires_grad]
    losses = []
    for start in range(0, len(X), batch_size):
        rows = order[..., start : start + batch_size]
        Xb, yb = X[rows], y[rows]
        if hand is None:
            for p in params:
                p.grad = None
            logits = network(Xb, shared)
            targets = yb.expand(K, *yb.shape) if shared else yb
            per_sample = criterion(
                mask_outputs(logits, mask).flatten(0, 1), targets.flatten(0, 1)
            )
            # The sum of the copies' mean losses: each copy's gradient is its own.
            (per_sample.sum() * (K / per_sample.numel())).backward()
            loss = per_sample.detach().view(K, -1).mean(1)
            grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        else:
            with torch.no_grad():
                loss, grads = hand(Xb, yb, shared, mask)
            if plugins.stacks:  # they read the gradients in .grad
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
        step = None
        if plugins.stacks:
            step = Step(Xb, yb, mask)
            step.loss = loss
            plugins.notify("after_task_backward", step)
        sgd.step(grads)
        if step is not None:
            plugins.notify("after_step", step)
        losses.append(loss)
    return torch.stack(losses).mean(0)


class _Orders:
    """Each epoch's batch order: one shared ``(n,)`` or one per copy ``(K, n)``."""

    def __init__(self, generators, n, device):
        self.generators, self.n, self.device = generators, n, device

    def draw(self):
        orders = [torch.randperm(self.n, generator=g) for g in self.generators]
        return (orders[0] if len(orders) == 1 else torch.stack(orders)).to(self.device)


def _stacked_buffer(nets, network):
    """The nets' momentum buffers as one ``(K, P)`` tensor (zeros for none), or None."""
    buffers = [
        [
            net.optimizer_.state.get(p, {}).get("momentum_buffer")
            for p in _trainable(net)
        ]
        for net in nets
    ]
    if all(b is None for per_net in buffers for b in per_net):
        return None
    return network.stack(
        [
            [
                torch.zeros_like(p) if b is None else b
                for p, b in zip(_trainable(net), bs, strict=True)
            ]
            for net, bs in zip(nets, buffers, strict=True)
        ]
    )


def _trainable(net):
    return [p for p in net.module_.parameters() if p.requires_grad]


@torch.no_grad()
def _write_buffers(nets, network, buffer, momenta):
    if buffer is None:
        return
    copies = network.unstack(network.split(buffer))
    for net, momentum, buffers in zip(nets, momenta, copies, strict=True):
        if momentum:
            for p, b in zip(_trainable(net), buffers, strict=True):
                net.optimizer_.state[p]["momentum_buffer"] = b.clone(
                    memory_format=torch.contiguous_format
                )


class StackedPlugins:
    """The plug-ins with per-step hooks, each stacked over the copies.

    Only plug-ins that declare ``_stackable_steps`` may have per-step hooks
    (``after_task_backward``, ``after_step``): their hooks see a net whose
    module holds the stacked parameters and act elementwise on their state,
    whose lists of parameter-shaped tensors are stacked for the chunk.
    """

    def __init__(self, nets, network):
        self.network = network
        self.view = _StackedNet(network)
        shapes = [p.shape for p in _trainable(nets[0])]
        self.stacks = []
        per_net = [[p for p in net.plugins_ if stepping(p)] for net in nets]
        for plugins in zip(*per_net, strict=True):
            stacked = copy.copy(plugins[0])
            names = [
                name
                for name, value in vars(plugins[0]).items()
                if _parameter_shaped(value, shapes)
            ]
            for name in names:
                setattr(
                    stacked,
                    name,
                    network.stack_parameterwise([getattr(p, name) for p in plugins]),
                )
            self.stacks.append((stacked, plugins, names))

    def notify(self, hook, step):
        for stacked, _, _ in self.stacks:
            getattr(stacked, hook)(self.view, step)

    def write_back(self):
        for stacked, plugins, names in self.stacks:
            for name in names:
                copies = self.network.unstack(getattr(stacked, name))
                for plugin, tensors in zip(plugins, copies, strict=True):
                    setattr(plugin, name, [t.contiguous().clone() for t in tensors])


def stepping(plugin):
    """Name the hooks of ``plugin`` called at every training step."""
    hooks = Hooks([plugin])
    return [name for name in STEP_HOOKS if hooks[name]]


def _parameter_shaped(value, shapes):
    return (
        isinstance(value, list)
        and len(value) == len(shapes)
        and all(
            isinstance(t, torch.Tensor) and t.shape == s
            for t, s in zip(value, shapes, strict=True)
        )
    )


class _StackedNet:
    """What a stackable plug-in's per-step hooks read: ``module_``'s parameters."""

    def __init__(self, network):
        self.module_ = _StackedParameters(network)


class _StackedParameters:
    def __init__(self, network):
        self.network = network

    def named_parameters(self):
        return iter(zip(self.network.names, self.network.params, strict=True))

    def parameters(self):
        return iter(self.network.params)
