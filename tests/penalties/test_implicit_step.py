"""The implicit (proximal) step of the quadratic penalties, against closed forms."""

import copy

import numpy as np
import pytest
import torch
from _tolerance import tolerance

from skcl import ContinualClassifier
from skcl.penalties import EWC, L2, MAS, SI, L2Init
from skcl.penalties._implicit import ImplicitQuadraticStep

SHAPE = (3, 4)


def quadratics(seed=0):
    """Two quadratics: one with per-coordinate weights, one with unit weights."""
    g = torch.Generator().manual_seed(seed)
    return [
        (2.0, [torch.randn(SHAPE, generator=g)], [torch.rand(SHAPE, generator=g)]),
        (0.5, [torch.randn(SHAPE, generator=g)], None),
    ]


def folded(forms):
    """Precision W and the term sum_k lam_k w_k c_k, by hand."""
    W = sum(lam * (torch.ones(SHAPE) if w is None else w[0]) for lam, _, w in forms)
    Wc = sum(
        lam * (torch.ones(SHAPE) if w is None else w[0]) * c[0] for lam, c, w in forms
    )
    return W, Wc


def one_step(optimizer_class, theta, grad, state=None, forms=None, **options):
    """Apply one optimizer step and the implicit step; return theta', optimizer."""
    p = torch.nn.Parameter(theta.clone())
    optimizer = optimizer_class([p], **options)
    if state is not None:
        optimizer.state[p].update({k: v.clone() for k, v in state.items()})
    step = ImplicitQuadraticStep([p], optimizer, forms or quadratics())
    p.grad = grad.clone()
    step.before_step()
    optimizer.step()
    step.apply()
    return p.detach().clone(), optimizer


def test_sgd_with_momentum_equals_the_closed_form():
    g = torch.Generator().manual_seed(1)
    theta, grad, v = (torch.randn(SHAPE, generator=g) for _ in range(3))
    lr, beta = 0.3, 0.9
    forms = quadratics()
    new, optimizer = one_step(
        torch.optim.SGD,
        theta,
        grad,
        {"momentum_buffer": v},
        forms,
        lr=lr,
        momentum=beta,
    )
    W, Wc = folded(forms)
    expected = (theta - lr * (beta * v + grad) + lr * Wc) / (1 + lr * W)
    torch.testing.assert_close(new, expected)
    buffer = optimizer.state[optimizer.param_groups[0]["params"][0]]["momentum_buffer"]
    torch.testing.assert_close(buffer, (theta - expected) / lr)


@pytest.mark.parametrize(
    "options",
    [
        {"momentum": 0.0},
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.9, "dampening": 0.3},
        {"momentum": 0.9, "dampening": 0.3, "nesterov": False, "weight_decay": 0.1},
        {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01},
    ],
    ids=["plain", "momentum", "nesterov", "dampening", "weight-decay", "nesterov-wd"],
)
@pytest.mark.parametrize("first_step", [True, False], ids=["first", "later"])
def test_sgd_step_takes_the_penalty_gradient_at_the_new_point(options, first_step):
    """theta' is what SGD itself would reach with the gradient
    g + W (theta' - c), and its momentum buffer is SGD's too: the implicit
    equation holds exactly for every option, also at a buffer's first step."""
    g = torch.Generator().manual_seed(2)
    theta, grad, v = (torch.randn(SHAPE, generator=g) for _ in range(3))
    state = None if first_step or not options["momentum"] else {"momentum_buffer": v}
    forms = quadratics()
    new, optimizer = one_step(
        torch.optim.SGD, theta, grad, state, forms, lr=0.2, **options
    )
    W, Wc = folded(forms)
    check, reference = one_step(
        torch.optim.SGD,
        theta,
        grad + W * new - Wc,
        state,
        [(0.0, [torch.zeros(SHAPE)], None)],
        lr=0.2,
        **options,
    )
    torch.testing.assert_close(new, check)
    ours, theirs = (list(o.state.values()) for o in (optimizer, reference))
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs):
        assert mine.keys() == other.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], other[key])


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("a", [1e-6, 1e-2, 1.0, 1e2, 1e5, 1e9])
def test_iteration_on_a_pure_quadratic_contracts_for_every_strength(a, beta):
    """With g = 0, e = theta - c and u = lr v, one step is linear in (e, u):
    its matrix is [[1, -beta], [a, beta]] / (1 + a) and its spectral radius
    is below 1 for every a > 0."""
    lr = 0.1
    forms = [(a / lr, [torch.zeros(1)], None)]
    columns = []
    for e, u in ((1.0, 0.0), (0.0, 1.0)):
        p = torch.nn.Parameter(torch.tensor([e], dtype=torch.float64))
        optimizer = torch.optim.SGD([p], lr=lr, momentum=beta)
        if beta:
            optimizer.state[p]["momentum_buffer"] = torch.tensor([u / lr]).double()
        forms64 = [(lam, [c.double() for c in cs], w) for lam, cs, w in forms]
        step = ImplicitQuadraticStep([p], optimizer, forms64)
        p.grad = torch.zeros_like(p)
        step.before_step()
        optimizer.step()
        step.apply()
        buffer = optimizer.state[p].get("momentum_buffer", torch.zeros(1))
        columns.append([p.item(), lr * buffer.item()])
    M = np.array(columns).T
    expected = np.array([[1, -beta], [a, beta]]) / (1 + a)
    # Derived: one momentum step and one proximal division, 8 roundings of values <= 1.
    bound = tolerance(8, 1.0)
    if beta:
        np.testing.assert_allclose(M, expected, rtol=0, atol=bound)
    else:
        np.testing.assert_allclose(M[0, 0], 1 / (1 + a), rtol=0, atol=bound)
    assert max(abs(np.linalg.eigvals(expected))) < 1
    assert max(abs(np.linalg.eigvals(M if beta else M[:1, :1]))) < 1


def test_fixed_point_is_a_stationary_point_of_the_penalised_objective():
    """A least-squares task loss plus a stiff quadratic (lr * W up to 1e6,
    far past the explicit step's stability bound): SGD with momentum and the
    implicit step converge to g + W (theta - c) = 0."""
    g = torch.Generator().manual_seed(3)
    A = torch.randn(20, 6, generator=g, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    W = torch.logspace(-2, 7, 6, dtype=torch.float64)
    c = torch.randn(6, generator=g, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))
    optimizer = torch.optim.SGD([p], lr=0.02, momentum=0.9)
    step = ImplicitQuadraticStep([p], optimizer, [(1.0, [c], [W])])
    for _ in range(3000):
        p.grad = A.T @ (A @ p.detach() - b) / len(b)
        step.before_step()
        optimizer.step()
        step.apply()
    theta = p.detach()
    stationarity = A.T @ (A @ theta - b) / len(b) + W * (theta - c)
    # Derived: A.T @ (A @ theta - b) adds 20 + 6 products; W * theta reaches 1.3e5.
    assert stationarity.abs().max() < tolerance(len(b) + len(theta), W * theta)
    expected = torch.linalg.solve(
        A.T @ A / len(b) + torch.diag(W), A.T @ b / len(b) + W * c
    )
    torch.testing.assert_close(theta, expected)


def test_implicit_step_matches_the_explicit_one_to_first_order():
    """Both are first-order steps of the same flow: they differ by
    lr * a * (beta v + g), so ten times smaller lr, a hundred times smaller gap."""
    g = torch.Generator().manual_seed(4)
    theta, grad, v, c = (torch.randn(SHAPE, generator=g).double() for _ in range(4))
    lam, beta = 3.0, 0.9
    gaps = []
    for lr in (1e-2, 1e-3):
        implicit, _ = one_step(
            torch.optim.SGD,
            theta,
            grad,
            {"momentum_buffer": v},
            [(lam, [c], None)],
            lr=lr,
            momentum=beta,
        )
        explicit = theta - lr * (beta * v + grad + lam * (theta - c))
        gaps.append((implicit - explicit).abs().max().item())
    assert 90 < gaps[0] / gaps[1] < 110


def adam_step_size(optimizer, p):
    group, state = optimizer.param_groups[0], optimizer.state[p]
    step = float(state["step"])
    square = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
    denominator = (square / (1 - group["betas"][1] ** step)).sqrt() + group["eps"]
    return group["lr"] / denominator


def rmsprop_step_size(optimizer, p):
    group, state = optimizer.param_groups[0], optimizer.state[p]
    square = state["square_avg"]
    if group["centered"]:
        square = square - state["grad_avg"] ** 2
    return group["lr"] / (square.sqrt() + group["eps"])


def adagrad_step_size(optimizer, p):
    group, state = optimizer.param_groups[0], optimizer.state[p]
    decayed = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
    return decayed / (state["sum"].sqrt() + group["eps"])


@pytest.mark.parametrize(
    ("optimizer_class", "options", "step_size"),
    [
        (torch.optim.Adam, {"lr": 0.01}, adam_step_size),
        (torch.optim.Adam, {"lr": 0.01, "amsgrad": True}, adam_step_size),
        (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}, adam_step_size),
        (torch.optim.RMSprop, {"lr": 0.01}, rmsprop_step_size),
        (torch.optim.RMSprop, {"lr": 0.01, "centered": True}, rmsprop_step_size),
        (torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.9}, rmsprop_step_size),
        (torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01}, adagrad_step_size),
    ],
    ids=[
        "adam",
        "amsgrad",
        "adamw",
        "rmsprop",
        "centered",
        "rmsprop-momentum",
        "adagrad",
    ],
)
def test_adaptive_optimizers_take_the_proximal_step_with_their_step_size(
    optimizer_class, options, step_size
):
    """theta' = (theta_t + eta W c) / (1 + eta W), eta the optimizer's
    per-coordinate step size; RMSprop's momentum buffer gets the penalty's
    gradient as SGD's does. Checked after a few steps, with history in the
    optimizer's state."""
    g = torch.Generator().manual_seed(5)
    forms = quadratics()
    W, Wc = folded(forms)
    p = torch.nn.Parameter(torch.randn(SHAPE, generator=g))
    optimizer = optimizer_class([p], **options)
    step = ImplicitQuadraticStep([p], optimizer, forms)
    for _ in range(4):
        p.grad = torch.randn(SHAPE, generator=g)
        step.before_step()
        optimizer.step()
        stepped = p.detach().clone()
        buffer = optimizer.state[p].get("momentum_buffer")
        buffer = None if buffer is None else buffer.clone()
        step.apply()
        eta = step_size(optimizer, p)
        expected = (stepped + eta * Wc) / (1 + eta * W)
        torch.testing.assert_close(p.detach(), expected)
        if buffer is not None:
            torch.testing.assert_close(
                optimizer.state[p]["momentum_buffer"],
                buffer + (stepped - expected) / options["lr"],
            )


def digits(n_tasks=3, n=120):
    from sklearn.datasets import load_digits

    data = load_digits()
    X, y = (data.data[:n] / 16).astype(np.float32), data.target[:n]
    rng = np.random.RandomState(0)
    perms = [np.arange(64)] + [rng.permutation(64) for _ in range(n_tasks - 1)]
    return (
        np.concatenate([X[:, q] for q in perms]),
        np.tile(y, n_tasks),
        np.repeat(np.arange(n_tasks), n),
    )


OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.0}),
    "sgd-momentum": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    "sgd-nesterov": (
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "optimizer__nesterov": True},
    ),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3, "momentum": 0.0}),
    "rmsprop-momentum": (torch.optim.RMSprop, {"lr": 1e-3, "momentum": 0.9}),
    "adagrad": (torch.optim.Adagrad, {"lr": 0.05}),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_no_strength_from_1e_minus_3_to_1e9_diverges(name, one_torch_thread):
    """Every optimizer the implicit step supports trains EWC and L2 together
    at every strength; at 1e9, L2 holds every parameter at its centre."""
    optimizer, options = OPTIMIZERS[name]
    X, y, t = digits()
    for lam in (1e-3, 1.0, 1e3, 1e6, 1e9):
        clf = ContinualClassifier(
            penalty=[EWC(lam=lam), L2(lam=lam)],
            optimizer=optimizer,
            module__hidden_sizes=(16,),
            batch_size=10,
            max_epochs=2,
            random_state=0,
            **options,
        ).fit(X, y, task_id=t)
        assert np.isfinite(clf.predict_proba(X)).all()
    anchor = clf.penalty_[1].anchor_
    for p, c in zip(clf.module_.parameters(), anchor, strict=True):
        assert (p.detach() - c).abs().max() < 1e-3


@pytest.mark.parametrize(
    "penalty",
    [
        L2(lam=1e8),
        L2Init(lam=1e8),
        EWC(lam=1e8),
        EWC(lam=1e8, mode="online"),
        SI(lam=1e8),
        MAS(lam=1e8),
    ],
    ids=["l2", "l2init", "ewc", "online-ewc", "si", "mas"],
)
def test_the_explicit_step_diverges_where_the_implicit_does_not(penalty):
    X, y, t = digits()
    params = dict(
        penalty=penalty,
        lr=0.05,
        momentum=0.9,
        module__hidden_sizes=(16,),
        batch_size=10,
        max_epochs=2,
        random_state=0,
    )
    ContinualClassifier(**params).fit(X, y, task_id=t)
    with pytest.raises(FloatingPointError, match="penalty_step='implicit'"):
        ContinualClassifier(penalty_step="explicit", **params).fit(X, y, task_id=t)


def test_penalty_step_is_validated():
    X, y, _ = digits(1, 40)
    expected = "penalty_step must be 'explicit' or 'implicit'"
    with pytest.raises(ValueError, match=expected):
        ContinualClassifier(penalty_step="proximal").fit(X, y)


def test_an_optimizer_without_a_known_step_size_is_refused_with_a_way_out():
    X, y, t = digits(2, 40)
    clf = ContinualClassifier(penalty=L2(), optimizer=torch.optim.ASGD, max_epochs=1)
    with pytest.raises(ValueError, match=r"ASGD.*penalty_step='explicit'"):
        clf.fit(X, y, task_id=t)
    assert not hasattr(clf, "net_")
    clf.set_params(penalty_step="explicit").fit(X, y, task_id=t)
    ContinualClassifier(optimizer=torch.optim.ASGD, max_epochs=1).fit(X, y)
    maximizing = ContinualClassifier(penalty=L2(), optimizer__maximize=True)
    with pytest.raises(ValueError, match="maximize"):
        maximizing.fit(X, y, task_id=t)


def test_explicit_step_adds_the_penalty_gradient_as_before():
    """The explicit path is unchanged: one step equals the autograd one."""
    X, y, t = digits(2, 40)
    for step in ("explicit", "implicit"):
        clf = ContinualClassifier(
            penalty=L2(lam=0.5),
            penalty_step=step,
            lr=0.1,
            momentum=0.0,
            batch_size=40,
            max_epochs=1,
            module__hidden_sizes=(8,),
            random_state=0,
        )
        clf.partial_fit(X[:40], y[:40], task_id=0, classes=np.arange(10))
        module = copy.deepcopy(clf.module_)
        anchor = [p.detach().clone() for p in module.parameters()]
        clf.partial_fit(X[40:], y[40:], task_id=1)
        loss = torch.nn.functional.cross_entropy(
            module(torch.as_tensor(X[40:])), torch.as_tensor(y[40:])
        )
        grads = torch.autograd.grad(loss, list(module.parameters()))
        a = 0.1 * 0.5
        for p, q, c, gr in zip(
            module.parameters(), clf.module_.parameters(), anchor, grads
        ):
            if step == "explicit":
                expected = p - 0.1 * gr  # the penalty's gradient is 0 at the anchor
            else:
                expected = (p - 0.1 * gr + a * c) / (1 + a)
            torch.testing.assert_close(q.detach(), expected.detach())
