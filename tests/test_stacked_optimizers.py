"""The stacked optimizers step each candidate as its own ``torch.optim`` one."""

import copy

import pytest
import torch
from torch import nn

from skcl._vectorized._network import StackedNetwork
from skcl._vectorized._optimizers import StackedOptimizer
from skcl.modules import MLP
from skcl.penalties._implicit import ImplicitQuadraticStep

STEPS, MORE_STEPS = 100, 20
EPS = torch.finfo(torch.float64).eps

# Per algorithm and flags: the optimizer's class and each candidate's keywords.
CASES = {
    "sgd": (torch.optim.SGD, lambda k: {"lr": 0.05 * (k + 1)}),
    "sgd-momentum": (
        torch.optim.SGD,
        lambda k: {"lr": 0.02 * (k + 1), "momentum": [0.9, 0.0, 0.5][k]},
    ),
    "sgd-dampening": (
        torch.optim.SGD,
        lambda k: {
            "lr": 0.03,
            "momentum": [0.8, 0.6, 0.0][k],
            "dampening": [0.3, 0.0, 0.5][k],
            "weight_decay": [1e-2, 0.0, 3e-2][k],
        },
    ),
    "sgd-nesterov": (
        torch.optim.SGD,
        lambda k: {
            "lr": [0.01, 0.03, 0.02][k],
            "momentum": [0.9, 0.5, 0.7][k],
            "nesterov": True,
            "weight_decay": [0.0, 1e-2, 0.0][k],
        },
    ),
    "adam": (
        torch.optim.Adam,
        lambda k: {
            "lr": [1e-3, 3e-3, 1e-2][k],
            "betas": [(0.9, 0.999), (0.8, 0.99), (0.5, 0.9)][k],
            "eps": [1e-8, 1e-6, 1e-3][k],
            "weight_decay": [0.0, 1e-2, 0.1][k],
        },
    ),
    "adam-amsgrad": (
        torch.optim.Adam,
        lambda k: {"lr": 2e-3 * (k + 1), "amsgrad": True, "weight_decay": 1e-2 * k},
    ),
    "adamw": (
        torch.optim.AdamW,
        lambda k: {"lr": [1e-3, 3e-3, 1e-2][k], "weight_decay": [1e-2, 0.0, 0.5][k]},
    ),
    "adamw-amsgrad": (
        torch.optim.AdamW,
        lambda k: {
            "lr": 2e-3,
            "amsgrad": True,
            "betas": [(0.9, 0.99), (0.7, 0.9), (0.0, 0.5)][k],
        },
    ),
    "rmsprop": (
        torch.optim.RMSprop,
        lambda k: {
            "lr": [1e-3, 1e-2, 3e-3][k],
            "alpha": [0.99, 0.9, 0.5][k],
            "eps": [1e-8, 1e-6, 1e-2][k],
            "weight_decay": [0.0, 1e-2, 0.0][k],
        },
    ),
    "rmsprop-momentum": (
        torch.optim.RMSprop,
        lambda k: {"lr": 1e-3 * (k + 1), "momentum": [0.9, 0.0, 0.5][k]},
    ),
    "rmsprop-centered": (
        torch.optim.RMSprop,
        lambda k: {
            "lr": 2e-3,
            "centered": True,
            "momentum": [0.0, 0.8, 0.3][k],
            "weight_decay": [1e-2, 0.0, 0.0][k],
        },
    ),
    "adagrad": (
        torch.optim.Adagrad,
        lambda k: {
            "lr": [1e-2, 3e-2, 0.1][k],
            "lr_decay": [0.0, 1e-2, 0.1][k],
            "weight_decay": [0.0, 1e-2, 0.0][k],
            "initial_accumulator_value": [0.0, 0.1, 1.0][k],
            "eps": [1e-10, 1e-6, 1e-3][k],
        },
    ),
}


def _modules(K, kind):
    """K float64 networks of one architecture; the stack transposes their weights."""
    torch.manual_seed(1)
    if kind == "mlp":
        modules = [MLP(5, 3, hidden_sizes=(4,)) for _ in range(K)]
    else:
        modules = [
            nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3, bias=False))
            for _ in range(K)
        ]
    return [m.double() for m in modules]


def _params(module):
    return [p for p in module.parameters() if p.requires_grad]


def _quadratic(modules, mode):
    """Each candidate's (weights, centres), the last one's precision zero; or None."""
    if mode is None:
        return None
    forms = []
    for k, module in enumerate(modules):
        weights = [torch.rand_like(p) * 3.0 for p in _params(module)]
        weights[0][0] = 0.0  # coordinates without a penalty
        if k == len(modules) - 1 and k > 0:
            weights = [torch.zeros_like(w) for w in weights]
        forms.append((weights, [torch.randn_like(p) for p in _params(module)]))
    return forms


def _reference_step(module, optimizer, grads, form, mode):
    """One ``torch.optim`` step of one candidate, with its penalty as ``mode`` says."""
    params = _params(module)
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    implicit = None
    if form is not None:
        weights, centres = form
        if mode == "explicit":
            with torch.no_grad():
                for p, w, c in zip(params, weights, centres, strict=True):
                    p.grad += w * (p - c)
        else:
            implicit = ImplicitQuadraticStep(
                params, optimizer, [(1.0, centres, weights)]
            )
            implicit.before_step()
    optimizer.step()
    if implicit is not None:
        implicit.apply()


def _tolerance(steps, magnitude):
    """The most two float64 runs of ``steps`` steps may differ by, at ``magnitude``.

    A step rounds each coordinate at most about 16 times (at most eps / 2 each);
    the stacked step and torch's may round at different places. The gradients
    are drawn, not computed from the parameters, and the penalty and weight
    decay only pull toward a centre, so the differences add up at most
    linearly: 16 * steps * eps * magnitude, ``magnitude`` the largest operand.
    """
    return 16 * steps * EPS * magnitude


def _magnitude(tensors, lr):
    """The largest operand: the tensors compared, and ``|theta| / lr`` for the
    momentum buffers that the implicit step computes as ``(theta - theta') / lr``."""
    return max(float(t.abs().max()) for t in tensors) / lr


def _run(case, K, mode, kind="mlp"):
    cls, hyper = CASES[case]
    modules = _modules(K, kind)
    optimizers = [cls(_params(m), **hyper(k)) for k, m in enumerate(modules)]
    forms = _quadratic(modules, mode)
    # Candidate 1 has trained before (it has state); the others start fresh.
    for k in range(1, min(K, 2)):
        for _ in range(3):
            grads = [torch.randn_like(p) for p in _params(modules[k])]
            _reference_step(modules[k], optimizers[k], grads, None, None)
    references = copy.deepcopy(list(zip(modules, optimizers)))
    network = StackedNetwork(modules)
    quadratic = None
    if forms is not None:
        quadratic = tuple(network.stack([f[i] for f in forms]) for i in range(2))
    stacked = StackedOptimizer(
        optimizers,
        network.flat,
        network.stack,
        lambda t: network.unstack(network.split(t)),
        quadratic,
        implicit=mode == "implicit",
    )
    for _ in range(STEPS):
        grads = [[torch.randn_like(p) for p in _params(m)] for m in modules]
        stacked.step(network.stack(grads))
        for k, (module, optimizer) in enumerate(references):
            form = None if forms is None else forms[k]
            _reference_step(module, optimizer, grads[k], form, mode)
    return network, stacked, references, forms, optimizers, modules


def _lrs(case, K):
    return min(CASES[case][1](k)["lr"] for k in range(K))


def _assert_params(network, references, steps, lr):
    copies = network.unstack(network.split(network.flat))
    expected = [p for m, _ in references for p in _params(m)]
    tol = _tolerance(steps, max(float(p.detach().abs().max()) for p in expected) + 1.0)
    for mine, (module, _) in zip(copies, references, strict=True):
        for p, q in zip(mine, _params(module), strict=True):
            torch.testing.assert_close(p, q.detach(), rtol=0, atol=tol)


def _assert_states(optimizers, references, steps, lr):
    for optimizer, (module, reference) in zip(optimizers, references, strict=True):
        mine = optimizer.state_dict()["state"]
        # ImplicitQuadraticStep leaves empty states behind: torch.optim's own are none.
        theirs = {i: s for i, s in reference.state_dict()["state"].items() if s}
        assert mine.keys() == theirs.keys()
        for i in theirs:
            assert list(mine[i]) == list(theirs[i])
            for name, value in theirs[i].items():
                got = mine[i][name]
                assert (got.dtype, got.device, got.shape) == (
                    value.dtype,
                    value.device,
                    value.shape,
                )
                assert got.is_contiguous()
                if name == "step":
                    assert torch.equal(got, value)
                    continue
                scale = max(float(value.abs().max()), 1.0)
                scale += (
                    max(float(p.detach().abs().max()) for p in _params(module)) / lr
                )
                torch.testing.assert_close(
                    got, value, rtol=0, atol=_tolerance(steps, scale)
                )


@pytest.mark.parametrize("mode", [None, "explicit", "implicit"])
@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_candidates_step_as_their_torch_optimizers(case, K, mode):
    network, stacked, references, forms, optimizers, modules = _run(case, K, mode)
    lr = _lrs(case, K)
    _assert_params(network, references, STEPS, lr)
    stacked.write_back()
    _assert_states(optimizers, references, STEPS, lr)
    # torch.optim continues from the written state as the stack does.
    network.copy_to(modules)
    for _ in range(MORE_STEPS):
        grads = [[torch.randn_like(p) for p in _params(m)] for m in modules]
        stacked.step(network.stack(grads))
        for k, (module, optimizer) in enumerate(zip(modules, optimizers)):
            form = None if forms is None else forms[k]
            _reference_step(module, optimizer, grads[k], form, mode)
    _assert_params(network, list(zip(modules, optimizers)), STEPS + MORE_STEPS, lr)
