"""MLP's Layer Norm and Concatenated ReLU: their forward pass and training paths."""

import numpy as np
import pytest
import torch
from _tolerance import tolerance, training_operations
from sklearn.base import clone

from skcl import ContinualClassifier
from skcl._engine import fit_together
from skcl._engine._chunk import stacked_reason
from skcl.modules import MLP, CReLU

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_crelu_concatenates_the_two_halves():
    X = torch.tensor([[1.5, -2.0, 0.0], [-1.0, 3.0, 0.5]])
    expected = torch.tensor(
        [[1.5, 0.0, 0.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.5, 1.0, 0.0, 0.0]]
    )
    assert torch.equal(CReLU()(X), expected)


def test_layer_norm_and_crelu_forward_as_written_by_hand():
    torch.manual_seed(0)
    mlp = MLP(3, 2, hidden_sizes=(4,), activation="crelu", layer_norm=True).double()
    with torch.no_grad():  # a LayerNorm that is not the identity
        mlp.layers[1].weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        mlp.layers[1].bias.copy_(torch.tensor([0.1, 0.0, -0.2, 0.3]))
    W1, b1, gamma, beta, W2, b2 = (p.detach() for p in mlp.parameters())
    assert W2.shape == (2, 8)
    X = torch.tensor([[0.5, -1.0, 2.0], [1.0, 1.0, -3.0]], dtype=torch.float64)
    expected = []
    for x in X:
        z = [float(W1[i] @ x + b1[i]) for i in range(4)]
        mean = sum(z) / 4
        var = sum((v - mean) ** 2 for v in z) / 4
        n = [
            (v - mean) / np.sqrt(var + 1e-5) * gamma[i] + beta[i]
            for i, v in enumerate(z)
        ]
        h = [max(float(v), 0.0) for v in n] + [max(-float(v), 0.0) for v in n]
        expected.append(
            [
                float(W2[k] @ torch.tensor(h, dtype=torch.float64) + b2[k])
                for k in range(2)
            ]
        )
    out = mlp(X)
    # Each output: 3 + 4 (statistics) + 8 multiply-adds on values of |x| <= 3.
    torch.testing.assert_close(
        out,
        torch.tensor(expected, dtype=torch.float64),
        atol=tolerance(15, 3 * out),
        rtol=0,
    )


def test_a_bad_activation_name_is_refused():
    with pytest.raises(ValueError, match=r'activation must be .* or "crelu"'):
        MLP(3, 2, activation="relu")


@pytest.mark.parametrize(
    "options", [dict(layer_norm=True), dict(activation="crelu")], ids=["ln", "crelu"]
)
def test_they_train_on_the_module_alone_and_stack_under_vmap(digits_stream, options):
    """No batched kernel covers them: alone the module's autograd, in a stack vmap."""
    X, y = digits_stream[0][:200], digits_stream[1][:200]
    base = ContinualClassifier(
        module=MLP,
        module__hidden_sizes=(12,),
        **{f"module__{k}": v for k, v in options.items()},
        batch_size=20,
        max_epochs=2,
        random_state=0,
    )
    alone = clone(base).fit(X[:20], y[:20])
    reason = stacked_reason([alone.net_], torch.as_tensor(X), "implicit")
    assert reason == "its module has no batched kernels (MLPs and nn.Sequential)"
    grid = [dict(lr=0.01), dict(lr=0.05)]
    together, reason = fit_together([clone(base).set_params(**p) for p in grid], X, y)
    assert reason is None
    for e, p in zip(together, grid, strict=True):
        own = clone(base).set_params(**p).fit(X, y)
        flat = torch.cat([q.detach().flatten() for q in own.module_.parameters()])
        ops = training_operations(own.module_, 2 * len(X))
        bound = tolerance(ops, flat, torch.float32)
        for a, b in zip(e.module_.parameters(), own.module_.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=bound, rtol=0)
