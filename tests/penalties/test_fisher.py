import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tolerance import forward_operations, tolerance
from torch import nn

from skcl.penalties import _per_sample, output_norm_gradients, squared_gradients
from skcl.penalties._fisher import _cross_entropy, _loss_cotangents


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class Scale(nn.Module):
    """A layer only the fallback handles: its own parameter."""

    def __init__(self, width):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, width))

    def forward(self, x):
        return x * self.scale


class Folded(nn.Module):
    """Folds a sequence axis into the batch: Linear sees 3 rows per sample."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 4)
        self.out = nn.Linear(12, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.inner(x.reshape(-1, 2))).reshape(len(x), 12))


class DataDependent(nn.Module):
    """Python control flow on values: vmap fails, the per-sample loop runs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(5, 3))

    def forward(self, x):
        return torch.stack(
            [r @ self.a if r.sum() > 0 else (r @ self.a).tanh() for r in x]
        )


def mlp():
    return nn.Sequential(
        nn.Linear(6, 8),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(8, 8),
        nn.Tanh(),
        nn.Linear(8, 4),
    ).double()


def cnn():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, (3, 2), padding=(1, 0), groups=2, padding_mode="circular"),
        nn.Tanh(),
        nn.Conv2d(4, 3, 2, padding="same", dilation=2, bias=False),
        nn.Flatten(),
        nn.Linear(3 * 4 * 2, 4),
    ).double()


def mixed():
    return nn.Sequential(
        nn.Linear(6, 8),
        nn.LayerNorm(8),
        nn.Tanh(),
        Scale(8),
        nn.BatchNorm1d(8),
        nn.Linear(8, 4),
    ).double()


def brute_force(module, X, y=None, *, loss="cross_entropy", fisher="empirical"):
    """One sample and one class/output/target at a time, with autograd."""
    module.eval()
    params = {k: p for k, p in module.named_parameters() if p.requires_grad}
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    for n in range(len(X)):
        z = module(X[n : n + 1])
        if loss == "mas":
            terms = [(1.0, z.square().sum())]
        elif loss == "mse" and fisher == "true":
            terms = [(1.0, zk) for zk in z.flatten()]
        elif loss == "mse":
            terms = [(1.0, 0.5 * (z - y[n : n + 1].reshape(z.shape)).square().sum())]
        elif fisher == "true":
            log_p = z.log_softmax(1)[0]
            terms = [(p_c, -log_p[c]) for c, p_c in enumerate(log_p.exp())]
        else:
            terms = [(1.0, F.cross_entropy(z, y[n : n + 1]))]
        for weight, term in terms:
            grads = torch.autograd.grad(term, list(params.values()), retain_graph=True)
            for k, g in zip(params, grads, strict=True):
                total[k] += weight * (g.abs() if loss == "mas" else g.square())
    return {k: t / len(X) for k, t in total.items()}


def assert_dicts_close(actual, expected, samples=16):
    # float64: a per-sample gradient goes forward and back through at most 70
    # fan-ins (the cnn's 18 + 12 + 16 + 24), is squared and averaged over samples.
    operations = (2 * 70 + 1) * samples
    assert actual.keys() == expected.keys()
    for k in expected:
        assert actual[k].shape == expected[k].shape, k
        atol = tolerance(operations, expected[k])
        torch.testing.assert_close(actual[k], expected[k], rtol=0, atol=atol, msg=k)


def data(n=7, shape=(6,), classes=4):
    return torch.randn(n, *shape, dtype=torch.float64), torch.randint(classes, (n,))


@pytest.mark.parametrize("fisher", ["empirical", "true"])
@pytest.mark.parametrize(
    ("make", "shape"), [(mlp, (6,)), (cnn, (2, 7, 6)), (mixed, (6,))]
)
def test_fisher_matches_per_sample_loop(make, shape, fisher):
    net = make()
    net.train()
    X, y = data(shape=shape)
    with torch.no_grad():
        net(X)  # updates the running statistics of batch norm layers
    fisher_ = squared_gradients(net, X, y, fisher=fisher, batch_size=3)
    assert all(m.training for m in net.modules())
    assert_dicts_close(fisher_, brute_force(net, X, y, fisher=fisher))


@pytest.mark.parametrize("make", [mlp, cnn, mixed])
def test_mas_matches_per_sample_loop(make):
    net = make()
    X, _ = data(shape=(2, 7, 6) if make is cnn else (6,))
    assert_dicts_close(output_norm_gradients(net, X), brute_force(net, X, loss="mas"))


@pytest.mark.parametrize("fisher", ["empirical", "true"])
def test_gaussian_fisher_matches_per_sample_loop(fisher):
    net = mixed()
    X, _ = data()
    y = torch.randn(len(X), 4, dtype=torch.float64)
    fisher_ = squared_gradients(net, X, y, loss="mse", fisher=fisher)
    assert_dicts_close(fisher_, brute_force(net, X, y, loss="mse", fisher=fisher))


def test_shared_and_reused_layers_and_sequences():
    """Per-sample gradients summed over calls/positions before squaring."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(5, 5)
            self.b = nn.Linear(5, 5)
            self.b.weight = self.a.weight  # tied
            self.seq = nn.Linear(5, 3)

        def forward(self, x):
            h = torch.tanh(self.a(torch.tanh(self.a(x))))  # a used twice
            return self.seq(self.b(h)).sum(1)

    net = Net().double()
    X = torch.randn(6, 10, dtype=torch.float64).reshape(6, 2, 5)
    y = torch.randint(3, (6,))
    assert_dicts_close(
        squared_gradients(net, X, y, fisher="true"),
        brute_force(net, X, y, fisher="true"),
    )
    assert_dicts_close(output_norm_gradients(net, X), brute_force(net, X, loss="mas"))


@pytest.mark.parametrize("module", [Folded, DataDependent])
def test_fallbacks_whole_network_and_loop(module):
    net = module().double()
    X = torch.randn(6, *((3, 2) if module is Folded else (5,)), dtype=torch.float64)
    y = torch.randint(3, (6,))
    assert_dicts_close(squared_gradients(net, X, y), brute_force(net, X, y))


def test_fallback_alone_in_small_vmap_calls_matches_fast_path(monkeypatch):
    monkeypatch.setattr(_per_sample, "_VMAP_ELEMENTS", 300)  # 1 to 2 samples a call
    net = cnn()
    X, y = data(shape=(2, 7, 6))
    fallback = _per_sample.per_sample_gradient_means(
        net, X, _loss_cotangents(_cross_entropy, y), reduction="square", fast=False
    )
    assert_dicts_close(fallback, squared_gradients(net, X, y))


def test_embedding_integer_inputs_and_numpy():
    net = nn.Sequential(nn.Embedding(10, 3), nn.Flatten(), nn.Linear(6, 2)).double()
    X = np.array([[1, 2], [3, 3], [9, 0]])
    y = np.array([0, 1, 1])
    expected = brute_force(net, torch.as_tensor(X), torch.as_tensor(y))
    assert_dicts_close(squared_gradients(net, X, y), expected)


def test_frozen_parameters_skipped_and_grad_untouched():
    net = mlp()
    net[0].weight.requires_grad_(False)
    net[3].bias.requires_grad_(False)
    net[5].weight.grad = torch.ones_like(net[5].weight)
    X, y = data()
    fisher = squared_gradients(net, X, y)
    assert set(fisher) == {"0.bias", "3.weight", "5.weight", "5.bias"}
    assert_dicts_close(fisher, brute_force(net, X, y))
    assert torch.equal(net[5].weight.grad, torch.ones_like(net[5].weight))
    assert net[0].weight.grad is None


def test_modes_restored_on_error():
    net = mixed()
    net.train()
    net[4].eval()
    X, y = data()

    def broken(z, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        squared_gradients(net, X, y, loss=broken)
    assert [m.training for m in net.modules()] == [True] * 5 + [False, True]


def test_squared_mean_gradient_is_a_different_quantity():
    net = mlp()
    X, y = data(n=16)
    fisher = squared_gradients(net, X, y)["5.weight"]
    net.eval()
    (mean_grad,) = torch.autograd.grad(F.cross_entropy(net(X), y), [net[5].weight])
    assert not torch.allclose(fisher, mean_grad.square(), rtol=0.1)
    # Jensen, up to float64 rounding: forward and back through 22 fan-ins, squared,
    # over 16 samples.
    slack = tolerance((2 * forward_operations(net) + 1) * len(X), fisher)
    assert (fisher >= mean_grad.square() - slack).all()
    assert fisher.sum() > 3 * mean_grad.square().sum()


def test_chunks_output_transform_and_callable_loss():
    net = mlp()
    X, y = data(n=10, classes=3)
    head = lambda z: z[:, :3]  # noqa: E731
    full = squared_gradients(net, X, y, output_transform=head)
    chunked = squared_gradients(net, X, y, output_transform=head, batch_size=4)
    custom = squared_gradients(
        net, X, y, loss=lambda z, t: F.cross_entropy(z[:, :3], t, reduction="none")
    )
    assert_dicts_close(chunked, full)
    assert_dicts_close(custom, full)
    assert full["5.weight"][3].abs().max() == 0


def test_sampled_fisher_converges_to_true():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    X = torch.randn(4, 3, dtype=torch.float64).repeat(2000, 1)
    for loss in ["cross_entropy", "mse"]:
        true = squared_gradients(net, X[:4], loss=loss, fisher="true")
        sampled = squared_gradients(net, X, loss=loss, fisher="sampled", random_state=0)
        again = squared_gradients(net, X, loss=loss, fisher="sampled", random_state=0)
        assert_dicts_close(again, sampled, samples=len(X))
        unseeded = squared_gradients(net, X[:4], loss=loss, fisher="sampled")
        assert unseeded.keys() == true.keys()
        for k in true:
            torch.testing.assert_close(sampled[k], true[k], rtol=0.1, atol=1e-3)


def test_single_linear_closed_form():
    net = nn.Linear(3, 2).double()
    X, y = data(n=5, shape=(3,), classes=2)
    p = net(X).softmax(1).detach()
    g = p - F.one_hot(y, 2)  # per-sample gradient of the loss w.r.t. the logits
    fisher = squared_gradients(net, X, y)
    torch.testing.assert_close(fisher["weight"], g.square().T @ X.square() / 5)
    torch.testing.assert_close(
        squared_gradients(net, X, fisher="true")["bias"], (p * (1 - p)).mean(0)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loss": "hinge"}, ValueError, "loss"),
        ({"fisher": "exact"}, ValueError, "fisher"),
        ({"fisher": "true", "loss": F.cross_entropy}, ValueError, "fisher"),
        ({"y": None}, ValueError, "y is required"),
        ({"y": torch.zeros(3, dtype=torch.long)}, ValueError, "same number"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"output_transform": 3}, TypeError, "output_transform"),
        ({"fisher": "sampled", "random_state": 0.5}, TypeError, "random_state"),
        ({"loss": F.cross_entropy}, ValueError, "one loss per sample"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    X, y = data()
    kwargs = {"y": y, **kwargs}
    with pytest.raises(error, match=match):
        squared_gradients(mlp(), X, **kwargs)


def test_invalid_module_and_empty_inputs():
    with pytest.raises(TypeError, match="module"):
        output_norm_gradients(lambda x: x, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least one sample"):
        output_norm_gradients(mlp(), torch.zeros(0, 6))
