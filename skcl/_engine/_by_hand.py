"""The batched path's forward and backward passes written out, without autograd.

For the stacks of small networks that continual learning trains at small
batches, autograd's bookkeeping costs about as much as the arithmetic: the
backward pass of an MLP written as batched matrix products takes two thirds
of the time. It applies to a batched plan whose layers all have a known
derivative (linear, ReLU, leaky ReLU, tanh, sigmoid, identity, dropout and
flatten before the first linear layer), every parameter trainable, and an
unweighted mean cross-entropy (no label smoothing) or squared error.
"""

import torch
from torch import nn

# The derivative of each elementwise layer from its output, applied to dz:
# the kernels autograd's own formulas call.
_aten = torch.ops.aten
_DERIVATIVES = {
    nn.ReLU: lambda dz, out, layer: _aten.threshold_backward(dz, out, 0.0),
    nn.LeakyReLU: lambda dz, out, layer: _aten.leaky_relu_backward(
        dz, out, layer.negative_slope, True
    ),
    nn.Tanh: lambda dz, out, layer: _aten.tanh_backward(dz, out),
    nn.Sigmoid: lambda dz, out, layer: _aten.sigmoid_backward(dz, out),
    nn.Identity: lambda dz, out, layer: dz,
}


def by_hand(network, criterion):
    """Return the hand-written pass for ``network`` and ``criterion``, or None."""
    if network.plan is None or not all(p.requires_grad for p in network.params):
        return None
    if type(criterion) is nn.CrossEntropyLoss:
        if criterion.weight is not None or criterion.label_smoothing:
            return None
        loss = _cross_entropy
    elif type(criterion) is nn.MSELoss:
        loss = _squared_error
    else:
        return None
    rows = [row for _, _, layer_rows in network.plan for row in layer_rows]
    if len(rows) != len(set(rows)):
        return None  # a layer used twice: its gradients add up, as autograd's
    seen_linear = False
    for kind, layer, _ in network.plan:
        if kind == "linear":
            seen_linear = True
        elif kind == "elementwise" and seen_linear:
            if type(layer) not in _DERIVATIVES or (
                type(layer) is nn.LeakyReLU and layer.negative_slope < 0
            ):
                return None
    return lambda X, targets, shared, mask, grads: _pass(
        network, loss, X, targets, shared, mask, grads
    )


def _pass(network, loss, X, targets, shared, mask, grads):
    """Write the parameters' gradients into ``grads`` (stacked layout); return
    each copy's mean loss ``(K,)`` and the copies' outputs ``(K, n, ...)``."""
    params, tape = network.params, []
    logits = h = network.forward(X, shared, tape)
    if mask is not None:
        h = h.masked_fill(~mask, float("-inf"))
    losses, dz = loss(h, targets, shared)
    remaining = sum(kind == "linear" for kind, *_ in tape)
    for kind, layer, rows, saved in reversed(tape):
        if kind == "linear":
            torch.bmm(saved.transpose(1, 2), dz, out=grads[rows[0]])
            if len(rows) == 2:
                torch.sum(dz, 1, out=grads[rows[1]])
            remaining -= 1
            if not remaining:
                break  # the inputs need no gradient
            dz = torch.bmm(dz, params[rows[0]].transpose(1, 2))
        elif kind == "dropout":
            dz = dz * saved
        else:
            dz = _DERIVATIVES[type(layer)](dz, saved, layer)
    return losses, logits


def _cross_entropy(logits, targets, shared):
    K, n = logits.shape[:2]
    targets = (targets.expand(K, n) if shared else targets).unsqueeze(2)
    log_p = torch.log_softmax(logits, dim=2)
    losses = -log_p.gather(2, targets).squeeze(2).mean(1)
    dz = log_p.exp_().scatter_add_(2, targets, log_p.new_full(targets.shape, -1.0))
    return losses, dz.mul_(1.0 / n)


def _squared_error(out, targets, shared):
    diff = out - targets
    if diff.shape != out.shape:
        raise ValueError(
            f"targets of shape {tuple(targets.shape)} for outputs {tuple(out.shape)}"
        )
    K = len(out)
    per_copy = diff[0].numel()
    return diff.square().reshape(K, -1).mean(1), diff.mul_(2.0 / per_copy)
