from torch import nn
from torch.nn.functional import relu


def _conv3x3(width_in, width_out, stride=1):
    return nn.Conv2d(width_in, width_out, 3, stride=stride, padding=1, bias=False)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch normalization and an identity shortcut
    (a 1x1 convolution where the width or the resolution changes)."""

    def __init__(self, width_in, width_out, stride, dropout):
        super().__init__()
        self.conv1 = _conv3x3(width_in, width_out, stride)
        self.bn1 = nn.BatchNorm2d(width_out)
        self.conv2 = _conv3x3(width_out, width_out)
        self.bn2 = nn.BatchNorm2d(width_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or width_in != width_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(width_in, width_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(width_out),
            )
        self.dropout = nn.Dropout(dropout)

    def forward(self, X):
        out = self.dropout(relu(self.bn1(self.conv1(X))))
        out = self.bn2(self.conv2(out)) + self.shortcut(X)
        return self.dropout(relu(out))


class ResNet18(nn.Module):
    """ResNet-18 for small images (the CIFAR variant of He et al., 2016).

    A 3x3 convolution of stride 1 with batch normalization, four stages of
    two basic blocks of widths ``width * (1, 2, 4, 8)`` (the last three
    stages halve the resolution), global average pooling and a linear head.
    This is the network of GEM (Lopez-Paz & Ranzato, 2017,
    ``model/common.py``), DER and most continual-learning papers on CIFAR and
    Tiny ImageNet; :class:`ReducedResNet18` is its narrow version.
    ``input_shape`` and ``output_dim`` are filled in by the estimators from
    the data. With ``width=64``, 3 input channels and 10 outputs it has
    11,173,962 parameters.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; any size (the pooling is
        global).
    output_dim : int
        Number of outputs.
    width : int, default=64
        Channels of the first stage.
    dropout : float, default=0.0
        Dropout probability after each activation of every block (Stable
        SGD's regularization; 0 gives the usual network).

    Examples
    --------
    >>> import torch
    >>> from skcl.modules import ResNet18
    >>> net = ResNet18(input_shape=(3, 32, 32), output_dim=10)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape, output_dim, *, width=64, dropout=0.0):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} needs input_shape=(channels, height, "
                f"width), got {input_shape}."
            )
        self.conv1 = _conv3x3(input_shape[0], width)
        self.bn1 = nn.BatchNorm2d(width)
        stages, width_in = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            width_out = width * 2**i
            stages.append(
                nn.Sequential(
                    _BasicBlock(width_in, width_out, stride, dropout),
                    _BasicBlock(width_out, width_out, 1, dropout),
                )
            )
            width_in = width_out
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(width_in, output_dim)

    def forward(self, X):
        out = self.stages(relu(self.bn1(self.conv1(X))))
        return self.linear(out.mean((2, 3)))


class ReducedResNet18(ResNet18):
    """The reduced ResNet-18 of GEM, A-GEM and Stable SGD: base width 20.

    :class:`ResNet18` with stages of 20, 40, 80 and 160 channels, the network
    of Split CIFAR-100 in GEM (Lopez-Paz & Ranzato, 2017), A-GEM (Chaudhry et
    al., 2019) and Stable SGD (Mirzadeh et al., 2020, Table 2). With 3 input
    channels and 100 outputs it has 1,109,240 parameters (and, as buffers,
    the running mean and variance of its 1,500 batch-normalized channels).
    Stable SGD's own PyTorch code skips each block's second convolution in
    the forward pass; this is GEM's network, which A-GEM's code also builds.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image.
    output_dim : int
        Number of outputs.
    width : int, default=20
        Channels of the first stage.
    dropout : float, default=0.0
        Dropout probability after each activation of every block.

    Examples
    --------
    >>> import torch
    >>> from skcl.modules import ReducedResNet18
    >>> net = ReducedResNet18(input_shape=(3, 32, 32), output_dim=100)
    >>> sum(p.numel() for p in net.parameters())
    1109240
    """

    def __init__(self, input_shape, output_dim, *, width=20, dropout=0.0):
        super().__init__(input_shape, output_dim, width=width, dropout=dropout)
