import torch
from torch import nn


class CNN(nn.Module):
    """Small convolutional network for images ``(n, channels, height, width)``.

    Each block is a 3x3 convolution (padding 1), ReLU and 2x2 max pooling;
    a hidden linear layer with dropout follows. ``input_shape`` and
    ``output_dim`` are filled in by the estimators from the data.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image.
    output_dim : int
        Number of outputs.
    channels : tuple of int, default=(16, 32)
        Output channels of each convolutional block.
    hidden_size : int, default=128
        Width of the hidden linear layer.
    dropout : float, default=0.0
        Dropout probability before the output layer.

    Examples
    --------
    >>> import torch
    >>> from skcl.modules import CNN
    >>> CNN(input_shape=(1, 8, 8), output_dim=10)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape,
        output_dim,
        *,
        channels=(16, 32),
        hidden_size=128,
        dropout=0.0,
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"CNN needs input_shape=(channels, height, width), got {input_shape}."
            )
        rows, cols = input_shape[1:]
        for _ in channels:
            rows, cols = rows // 2, cols // 2
        if rows == 0 or cols == 0:
            raise ValueError(
                f"Images of shape {tuple(input_shape)} are too small for "
                f"{len(channels)} pooling blocks."
            )
        blocks = []
        width = input_shape[0]
        for out in channels:
            blocks += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, *input_shape)).numel()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_flat, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, output_dim),
        )

    def forward(self, X):
        return self.head(self.features(X))
