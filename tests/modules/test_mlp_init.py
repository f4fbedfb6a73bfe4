import numpy as np
import pytest
import torch
from torch import nn

from skcl import ContinualClassifier
from skcl.modules import MLP


def test_xavier_uniform_weights_and_zero_biases():
    """The DER paper's MLP 784-100-100-10: each weight uniform in +-a,
    a = sqrt(6 / (fan_in + fan_out)), biases zero."""
    torch.manual_seed(0)
    mlp = MLP(784, 10, hidden_sizes=(100, 100), init="xavier_uniform")
    layers = [m for m in mlp.layers if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in layers] == [
        (100, 784),
        (100, 100),
        (10, 100),
    ]
    for layer in layers:
        w = layer.weight.detach().double()
        fan_out, fan_in = w.shape
        a = np.sqrt(6 / (fan_in + fan_out))
        n = w.numel()
        assert float(w.abs().max()) <= a
        # Uniform(-a, a): E[w^2] = a^2 / 3, and the mean of n squares has a
        # standard error of sqrt(4 a^4 / 45 / n); 5 of them.
        se = np.sqrt(4 * a**4 / 45 / n)
        assert abs(float(w.pow(2).mean()) - a**2 / 3) < 5 * se
        assert abs(float(w.mean())) < 5 * a / np.sqrt(3 * n)
        assert float(w.abs().max()) > a * (1 - 20 / n)  # fills the interval
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_init_is_seeded_by_random_state_and_checked():
    X, y = np.random.RandomState(0).normal(size=(20, 4)), np.arange(20) % 2
    fits = [
        ContinualClassifier(
            module__init="xavier_uniform", max_epochs=1, random_state=s
        ).fit(X, y)
        for s in (0, 0, 1)
    ]
    w = [f.initial_snapshot_["layers.0.weight"] for f in fits]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    with pytest.raises(ValueError, match="init must be one of"):
        MLP(4, 2, init="xavier")
