"""The hidden units of a network: where they are, their features, their reset."""

import itertools
import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ..modules import MLP, CReLU

# The activations whose units are identified, as functions of the features.
_ACTIVATIONS = {
    nn.ReLU: F.relu,
    nn.Tanh: torch.tanh,
    nn.Sigmoid: torch.sigmoid,
    nn.SiLU: F.silu,
    nn.GELU: F.gelu,
    nn.ELU: F.elu,
    nn.Softplus: F.softplus,
    nn.Identity: lambda h: h,
    CReLU: lambda h: F.relu(torch.cat([h, -h], dim=-1)),
}


class HiddenLayer(NamedTuple):
    """One hidden layer: indices of its parameters in ``module.parameters()``.

    ``weight``, ``bias``: the linear layer into the units; ``norm``: a
    LayerNorm's ``(weight, bias)`` after it, or None, and its ``eps``;
    ``activation``: the activation's class name; ``out_weight``,
    ``out_bias``: the next linear layer. Biases are None where absent. Plug-ins
    keep it as a plain tuple (their state is plain values).
    """

    weight: int
    bias: int | None
    norm: tuple | None
    eps: float | None
    activation: str
    out_weight: int
    out_bias: int | None


def hidden_layers(module, owner, *, crelu=False):
    """Return the :class:`HiddenLayer` list of ``module``.

    CReLU activations (two features per unit) are refused unless ``crelu``.

    Raises
    ------
    TypeError
        Naming ``owner`` unless ``module`` is a :class:`skcl.modules.MLP` or an
        ``nn.Sequential`` of ``Linear``, ``LayerNorm``, elementwise activation
        (with their default arguments) and ``Dropout`` layers (an optional
        ``Flatten`` first), all trainable.
    """
    leaves = _leaves(module.layers if type(module) is MLP else module)
    index = {id(p): i for i, p in enumerate(module.parameters())}
    if leaves and type(leaves[0]) is nn.Flatten:
        leaves = leaves[1:]
    linear = [i for i, leaf in enumerate(leaves) if type(leaf) is nn.Linear]
    known = (nn.Linear, nn.LayerNorm, nn.Dropout, *_ACTIVATIONS)
    bad = [
        repr(leaf)
        for leaf in leaves
        if type(leaf) not in known
        or (type(leaf) is CReLU and not crelu)
        or (type(leaf) in _ACTIVATIONS and _settings(leaf) != _settings(type(leaf)()))
    ]
    frozen = any(not p.requires_grad for p in module.parameters())
    if bad or frozen or not linear or linear[-1] != len(leaves) - 1:
        what = f"it holds {', '.join(bad)}" if bad else "its layers do not fit"
        if frozen:
            what = "it has frozen parameters"
        raise TypeError(
            f"{owner} finds the hidden units of an skcl.modules.MLP or an "
            "nn.Sequential of Linear layers, each but the last followed by an "
            "optional LayerNorm, an elementwise activation (ReLU, Tanh, ... with "
            f"its default arguments) and optional Dropout, all trainable; {what}."
        )
    layers = []
    for start, stop in itertools.pairwise(linear):
        between = leaves[start + 1 : stop]
        kinds = [type(leaf) for leaf in between if type(leaf) is not nn.Dropout]
        norms = [leaf for leaf in between if type(leaf) is nn.LayerNorm]
        activations = [k for k in kinds if k in _ACTIVATIONS]
        if len(activations) != 1 or kinds[-1] not in _ACTIVATIONS or len(kinds) > 2:
            raise TypeError(
                f"{owner} needs one elementwise activation (after an optional "
                "LayerNorm) between linear layers; found "
                f"{[k.__name__ for k in kinds]}."
            )
        norm = norms[0] if norms else None
        if norm is not None and not norm.elementwise_affine:
            raise TypeError(f"{owner} needs an elementwise-affine LayerNorm.")
        layers.append(
            HiddenLayer(
                *_rows(leaves[start], index),
                None if norm is None else _rows(norm, index),
                None if norm is None else norm.eps,
                activations[0].__name__,
                *_rows(leaves[stop], index),
            )
        )
    return layers


def _settings(activation):
    """An activation's arguments but ``inplace``: the functions take defaults."""
    return {
        k: v
        for k, v in vars(activation).items()
        if not k.startswith("_") and k not in ("training", "inplace")
    }


def _rows(layer, index):
    bias = getattr(layer, "bias", None)
    return index[id(layer.weight)], None if bias is None else index[id(bias)]


def _leaves(module):
    if type(module) is not nn.Sequential:
        return [module]
    return [leaf for child in module for leaf in _leaves(child)]


def hidden_features(layers, params, X):
    """Each hidden layer's features ``(n, units)`` for ``X``, dropout off.

    ``params`` is the list of the module's parameters (``module.parameters()``,
    or a stacked candidate's view of them).
    """
    activations = {cls.__name__: fn for cls, fn in _ACTIVATIONS.items()}
    h, features = X.flatten(1), []
    for layer in map(HiddenLayer._make, layers):
        h = F.linear(h, params[layer.weight], _get(params, layer.bias))
        if layer.norm is not None:
            weight, bias = (_get(params, i) for i in layer.norm)
            h = F.layer_norm(h, weight.shape, weight, bias, layer.eps)
        h = activations[layer.activation](h)
        features.append(h)
    return features


def _get(params, i):
    return None if i is None else params[i]


def draw_incoming(layer, params, units, generator, *, draw_bias=True, whole=False):
    """Draw fresh incoming weights (and biases) of ``units`` in place.

    From the distribution of ``nn.Linear``'s default initialization,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: the units' weight rows, then
    their biases; with ``whole``, a whole layer's, of which the units take
    their own rows (as many draws whatever the units: candidates that share
    a generator stay in step). With ``draw_bias=False`` the biases are set
    to 0 instead.
    """
    weight, bias = params[layer.weight], _get(params, layer.bias)
    if not draw_bias and bias is not None:
        bias[units], bias = 0, None
    bound = 1 / math.sqrt(weight.shape[1])
    rows = len(weight) if whole else len(units)
    for target in (weight, bias):
        if target is None:
            continue
        shape = (rows, *target.shape[1:])
        fresh = torch.rand(shape, generator=generator, dtype=target.dtype)
        fresh = (fresh * (2 * bound) - bound).to(target.device)
        target[units] = fresh[units] if whole else fresh


def unit_masks(layer, params, units):
    """Boolean masks (None where untouched) of ``units``' incoming and outgoing
    entries, one per parameter: what the optimizer state resets."""
    masks = [None] * len(params)
    for i, dim in ((layer.weight, 0), (layer.bias, 0), (layer.out_weight, 1)):
        if i is None:
            continue
        mask = torch.zeros_like(params[i], dtype=torch.bool)
        mask.index_fill_(dim, units, True)
        masks[i] = mask
    return masks


def merge_masks(masks, more):
    """Entrywise or of two lists of masks (None for none)."""
    return [
        b if a is None else a if b is None else a | b
        for a, b in zip(masks, more, strict=True)
    ]


def layer_tuples(net, owner, *, crelu=False):
    """The hidden layers of ``net.module_`` as the plain tuples plug-ins keep."""
    return [tuple(layer) for layer in hidden_layers(net.module_, owner, crelu=crelu)]


def check_units(plugin, net, per_unit, *, nonnegative=()):
    """Raise ValueError unless ``plugin``'s hidden layers are ``net``'s and its
    per-unit lists ``per_unit`` (attribute names) hold one tensor of each
    layer's width per hidden layer (>= 0 for the names in ``nonnegative``)."""
    layers = layer_tuples(net, type(plugin).__name__)
    if [tuple(layer) for layer in plugin._layers] != layers:
        raise ValueError("_layers does not describe the network's hidden layers.")
    params = list(net.module_.parameters())
    widths = [params[HiddenLayer._make(layer).weight].shape[0] for layer in layers]
    for name in per_unit:
        values = getattr(plugin, name)
        shapes = [tuple(v.shape) if torch.is_tensor(v) else None for v in values]
        if shapes != [(w,) for w in widths]:
            raise ValueError(
                f"{name} should hold one tensor per hidden layer of shapes "
                f"{[(w,) for w in widths]}; got {shapes}."
            )
        if name in nonnegative and any(bool((v < 0).any()) for v in values):
            raise ValueError(f"{name} holds negative values.")
