from torch import nn


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
    activation : type of nn.Module, default=nn.ReLU
        Activation after each hidden layer.

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
    ):
        super().__init__()
        layers = []
        width = input_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), activation()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, output_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, X):
        return self.layers(X.flatten(1))
