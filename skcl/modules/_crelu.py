import torch
from torch import nn
from torch.nn import functional as F


class CReLU(nn.Module):
    """Concatenated ReLU: ``[relu(x), relu(-x)]`` along the last dimension.

    Doubles the width of its input (Shang et al., "Understanding and
    Improving Convolutional Neural Networks via Concatenated Rectified Linear
    Units", ICML 2016); no unit is ever zero on both halves, so none dies.
    :class:`MLP` uses it with ``activation="crelu"``.

    Examples
    --------
    >>> import torch
    >>> from skcl.modules import CReLU
    >>> CReLU()(torch.tensor([[1.0, -2.0]]))
    tensor([[1., 0., 0., 2.]])
    """

    def forward(self, X):
        return F.relu(torch.cat([X, -X], dim=-1))
