"""Ready-made networks whose input and output sizes the estimators infer."""

from ._cnn import CNN
from ._crelu import CReLU
from ._mlp import MLP
from ._resnet import ReducedResNet18, ResNet18

__all__ = ["CNN", "CReLU", "MLP", "ReducedResNet18", "ResNet18"]
