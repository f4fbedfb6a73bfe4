"""The stacked optimizers step each candidate as its own ``torch.optim`` one."""

import copy
import re

import pytest
import torch
from torch import nn

import skcl._engine._optimizers as stacked_optimizers
from skcl._engine._network import StackedNetwork
from skcl._engine._optimizers import StackedOptimizer, stacked_optimizer_reason
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
            "dampening": [0.3, 0.2, 0.5][k],
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
    "adam-decoupled": (
        torch.optim.Adam,
        lambda k: {
            "lr": [1e-3, 3e-3, 1e-2][k],
            "weight_decay": [0.1, 1e-2, 0.0][k],
            "decoupled_weight_decay": True,
        },
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
    if kind in ("mlp", "frozen"):
        modules = [MLP(5, 3, hidden_sizes=(4,)) for _ in range(K)]
        for module in modules:
            module.layers[0].weight.requires_grad_(kind == "mlp")
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
    """The most a float64 run of ``steps`` steps may differ from torch's.

    A step rounds each coordinate at most about 16 times (eps / 2 each at
    most); the stacked step and torch's may round at different places (their
    quadratic step, a product's operand order). The gradients are drawn, not
    computed from the parameters, and the penalty and weight decay only pull
    toward a centre, so the differences add up at most linearly over the
    steps: 16 * steps * eps * ``magnitude``, the largest operand.
    """
    return 16 * steps * EPS * magnitude


def _largest(tensors):
    return max(float(t.detach().abs().max()) for t in tensors)


def _unstack_flat(network):
    return lambda t: network.unstack(network.split(t))


def _run(case, K, mode, kind="mlp"):
    cls, hyper = CASES[case]
    modules = _modules(K, kind)
    # Over every parameter: torch skips the frozen ones, which get no gradient.
    optimizers = [cls(m.parameters(), **hyper(k)) for k, m in enumerate(modules)]
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
        _unstack_flat(network),
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


def _smallest_lr(case, K):
    return min(CASES[case][1](k)["lr"] for k in range(K))


def _assert_params(network, references, steps):
    copies = network.unstack(network.split(network.flat))
    # Operands: the parameters, and a step's lr * direction (of order one).
    expected = [p for m, _ in references for p in _params(m)]
    tol = _tolerance(steps, _largest(expected) + 1.0)
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


def _check(case, K, mode, kind="mlp"):
    """Stacked steps equal torch's, and torch continues from the written state."""
    network, stacked, references, forms, optimizers, modules = _run(case, K, mode, kind)
    _assert_params(network, references, STEPS)
    stacked.write_back()
    _assert_states(optimizers, references, STEPS, _smallest_lr(case, K))
    network.copy_to(modules)
    for _ in range(MORE_STEPS):
        grads = [[torch.randn_like(p) for p in _params(m)] for m in modules]
        stacked.step(network.stack(grads))
        for k, (module, optimizer) in enumerate(zip(modules, optimizers)):
            form = None if forms is None else forms[k]
            _reference_step(module, optimizer, grads[k], form, mode)
    _assert_params(network, list(zip(modules, optimizers)), STEPS + MORE_STEPS)


@pytest.mark.parametrize("mode", [None, "explicit", "implicit"])
@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_candidates_step_as_their_torch_optimizers(case, K, mode):
    _check(case, K, mode)


@pytest.mark.parametrize("kind", ["sequential", "frozen"])
@pytest.mark.parametrize("mode", [None, "implicit"])
@pytest.mark.parametrize("case", list(CASES))
def test_column_blocks_step_as_the_whole(monkeypatch, case, mode, kind):
    # Blocks of 5 columns for K = 3: each parameter spans several blocks.
    monkeypatch.setattr(stacked_optimizers, "_BLOCK_ELEMENTS", 16)
    _check(case, 3, mode, kind)


def test_write_back_before_a_step_leaves_fresh_optimizers_without_state():
    modules = _modules(2, "mlp")
    optimizers = [torch.optim.Adam(m.parameters()) for m in modules]
    network = StackedNetwork(modules)
    stacked = StackedOptimizer(
        optimizers, network.flat, network.stack, _unstack_flat(network)
    )
    stacked.write_back()
    assert all(not o.state_dict()["state"] for o in optimizers)


def _optimizers(cls=torch.optim.SGD, K=2, **kwargs):
    return [cls(m.parameters(), **kwargs) for m in _modules(K, "mlp")]


def _stepped(optimizer, which=None):
    """``optimizer`` after a step with gradients on the parameters ``which``."""
    for i, p in enumerate(optimizer.param_groups[0]["params"]):
        p.grad = torch.ones_like(p) if which is None or i in which else None
    optimizer.step()
    return optimizer


class _OwnSGD(torch.optim.SGD):
    pass


def _refusals():
    sgd, adam, rmsprop = torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop
    module = _modules(1, "mlp")[0]
    two_groups = sgd(
        [
            {"params": module.layers[0].parameters()},
            {"params": module.layers[2].parameters()},
        ],
        lr=0.1,
    )
    cases = [
        ([torch.optim.LBFGS(module.parameters())], "its optimizer is LBFGS"),
        ([_OwnSGD(module.parameters(), lr=0.1)], "its optimizer is _OwnSGD"),
        (
            _optimizers()[:1] + _optimizers(adam)[:1],
            "their optimizers differ: SGD and Adam",
        ),
        (
            _optimizers(torch.optim.AdamW)[:1] + _optimizers(adam)[:1],
            "their optimizers differ: AdamW and Adam",
        ),
        ([two_groups], "its SGD has 2 parameter groups"),
        (_optimizers(lr=0.1, maximize=True), "its SGD sets maximize"),
        (_optimizers(adam, differentiable=True), "its Adam sets differentiable"),
        (_optimizers(adam, capturable=True), "its Adam sets capturable"),
        (
            _optimizers(lr=0.1, momentum=0.9, nesterov=True)[:1]
            + _optimizers(lr=0.1, momentum=0.9)[:1],
            "their SGD differs in nesterov",
        ),
        (
            _optimizers(adam)[:1] + _optimizers(adam, amsgrad=True)[:1],
            "their Adam differs in amsgrad",
        ),
        (
            _optimizers(adam)[:1] + _optimizers(adam, decoupled_weight_decay=True)[:1],
            "their Adam differs in decoupled_weight_decay",
        ),
        (
            _optimizers(rmsprop)[:1] + _optimizers(rmsprop, centered=True)[:1],
            "their RMSprop differs in centered",
        ),
        (
            [_stepped(_optimizers(adam)[0], which={0, 1})],
            "its Adam has state for only some parameters",
        ),
        (
            [_stepped(_stepped(_optimizers(adam)[0]), which={0})],
            "its Adam's parameters are at different steps",
        ),
    ]
    fused = _optimizers(adam)
    fused[0].param_groups[0]["fused"] = True
    cases.append((fused, "its Adam sets fused"))
    late_momentum = _stepped(_optimizers(rmsprop)[0])
    late_momentum.param_groups[0]["momentum"] = 0.9
    cases.append(([late_momentum], "its RMSprop's state lacks momentum_buffer"))
    late_amsgrad = _stepped(_optimizers(adam)[0])
    late_amsgrad.param_groups[0]["amsgrad"] = True
    cases.append(([late_amsgrad], "its Adam's state lacks max_exp_avg_sq"))
    other = MLP(5, 3, hidden_sizes=(6,)).double()
    cases.append(
        (
            [*_optimizers()[:1], sgd(other.parameters(), lr=0.1)],
            "their optimizers' parameters differ in shape",
        )
    )
    return cases


@pytest.mark.parametrize(("optimizers", "reason"), _refusals())
def test_refusals_say_why(optimizers, reason):
    assert stacked_optimizer_reason(optimizers) == reason
    with pytest.raises(ValueError, match=re.escape(reason)):
        StackedOptimizer(optimizers, torch.zeros(1, 1), None, None)


@pytest.mark.parametrize(
    "optimizers",
    [
        _optimizers(lr=0.1, foreach=True),
        _optimizers(torch.optim.Adam, foreach=False, fused=False),
        _optimizers(torch.optim.AdamW),
        [_stepped(o) for o in _optimizers(torch.optim.Adagrad)],
    ],
)
def test_accepted_optimizers_have_no_reason(optimizers):
    assert stacked_optimizer_reason(optimizers) is None


def test_optimizers_of_other_parameters_are_refused():
    modules = _modules(2, "mlp")
    network = StackedNetwork(modules)
    optimizers = [torch.optim.SGD(m.layers[0].parameters()) for m in modules]
    with pytest.raises(ValueError, match="do not step the stacked parameters"):
        StackedOptimizer(
            optimizers, network.flat, network.stack, _unstack_flat(network)
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["adam", "adam-amsgrad", "adamw"])
def test_adams_floor_under_zero_moments_changes_no_bit(monkeypatch, case, dtype):
    """Second moments of 0, subnormal and tiny: the floor that spares the
    square root of 0 its slow path leaves every step bitwise as without it."""
    cls, hyper = CASES[case]

    def run():
        torch.manual_seed(0)
        modules = [m.to(dtype) for m in _modules(3, "mlp")]
        optimizers = [cls(m.parameters(), **hyper(k)) for k, m in enumerate(modules)]
        network = StackedNetwork(modules)
        stacked = StackedOptimizer(
            optimizers, network.flat, network.stack, _unstack_flat(network)
        )
        for step in range(30):
            grads = network.stack(
                [[torch.randn_like(p) for p in _params(m)] for m in modules]
            )
            scale = torch.logspace(-50, 0, grads.shape[1], dtype=torch.float64)
            grads *= scale.to(dtype)  # squares from 0 through subnormal to one
            grads[:, ::3] = 0.0
            if step >= 20:  # moments decaying towards 0
                grads[:, 1::3] = 0.0
            stacked.step(grads)
        return network.flat.clone(), [t.clone() for t in stacked.tensors.values()]

    floored = run()
    monkeypatch.setattr(stacked_optimizers, "_root_floor", lambda *args: 0.0)
    plain = run()
    assert torch.equal(floored[0], plain[0])
    for a, b in zip(floored[1], plain[1], strict=True):
        assert torch.equal(a, b)


def test_adams_floor_is_below_what_eps_rounds_away():
    spacing = stacked_optimizers._spacing(1e-8, torch.float32)
    assert spacing == 2.0**-50  # 1e-8 lies in [2**-27, 2**-26)
    root = (1 - 0.999) ** 0.5  # the first step's bias correction
    floor = stacked_optimizers._root_floor(spacing, root, torch.float32)
    eps = torch.tensor(1e-8)
    assert torch.sqrt(torch.tensor(floor)) / root + eps == eps
    assert stacked_optimizers._root_floor(None, root, torch.float32) == 0.0
    assert stacked_optimizers._spacing(0.0, torch.float32) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_adams_one_step_size_for_all_changes_no_bit(monkeypatch, cls, dtype):
    """Candidates with one step size take it as addcdiv's scalar: bitwise the
    per-candidate column's product (addcdiv rounds ``(value * m) / d``)."""

    def run():
        torch.manual_seed(0)
        modules = [m.to(dtype) for m in _modules(3, "mlp")]
        optimizers = [cls(m.parameters(), lr=3e-3, weight_decay=1e-2) for m in modules]
        network = StackedNetwork(modules)
        stacked = StackedOptimizer(
            optimizers, network.flat, network.stack, _unstack_flat(network)
        )
        for _ in range(20):
            stacked.step(
                network.stack(
                    [[torch.randn_like(p) for p in _params(m)] for m in modules]
                )
            )
        return network.flat.clone(), stacked._size

    scalar, size = run()
    assert size is not None
    own_scalars = stacked_optimizers._Adam._scalars

    def columns(self):
        scalars = own_scalars(self)
        self._size = None
        return scalars

    monkeypatch.setattr(stacked_optimizers._Adam, "_scalars", columns)
    column, size = run()
    assert size is None
    assert torch.equal(scalar, column)
