from torch import nn

from ._crelu import CReLU

INITS = ("default", "xavier_uniform")


class MLP(nn.Module):
    """Multi-layer perceptron with dropout, the estimators' default module.

    ``input_dim`` and ``output_dim`` are filled in by the estimators from the
    data (number of features, number of classes or targets) unless given.

    Parameters
    ----------
    input_dim : int
        Number of input features.
    output_dim : int
        Number of outputs (logits for a classifier).
    hidden_sizes : tuple of int, default=(100,)
        Width of each hidden layer; ``()`` gives a linear model.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    activation : type of nn.Module or "crelu", default=nn.ReLU
        Activation after each hidden layer. ``"crelu"`` is :class:`CReLU`,
        which doubles the width that the next layer reads (a layer of ``h``
        units feeds ``2 h`` inputs forward): narrow ``hidden_sizes`` to keep
        the parameter count (784-91-91-10 with CReLU has about the
        parameters of 784-100-100-10).
    layer_norm : bool, default=False
        A ``nn.LayerNorm`` after each hidden linear layer, before the
        activation (as Kumar et al., 2023, place it). Such networks train on
        the module's own autograd alone (and under ``torch.func.vmap`` in a
        stack): the batched kernels cover linear, elementwise and dropout
        layers only.
    init : {"default", "xavier_uniform"}, default="default"
        The initial weights: PyTorch's default for :class:`torch.nn.Linear`,
        or Xavier-uniform weights (Glorot & Bengio, 2010: uniform in
        ``+-sqrt(6 / (fan_in + fan_out))``) and zero biases, as the DER
        paper's MLP (Mammoth's ``MNISTMLP``). The draws use torch's global
        generator, which the estimators seed from ``random_state``.

    Examples
    --------
    >>> import torch
    >>> from skcl.modules import MLP
    >>> MLP(input_dim=4, output_dim=3, hidden_sizes=(8, 8))(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        *,
        hidden_sizes=(100,),
        dropout=0.0,
        activation=nn.ReLU,
        layer_norm=False,
        init="default",
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}.")
        crelu = isinstance(activation, str) and activation == "crelu"
        if isinstance(activation, str) and not crelu:
            raise ValueError(
                f'activation must be a torch.nn.Module class or "crelu"; got '
                f"{activation!r}."
            )
        layers = []
        width = input_dim
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if layer_norm:
                layers.append(nn.LayerNorm(size))
            layers.append(CReLU() if crelu else activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = 2 * size if crelu else size
        layers.append(nn.Linear(width, output_dim))
        self.layers = nn.Sequential(*layers)
        if init == "xavier_uniform":
            for layer in self.layers:
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)

    def forward(self, X):
        return self.layers(X.flatten(1))
