"""skcl: scikit-learn-compatible continual learning with neural networks."""

from ._classifier import ContinualClassifier
from ._persistence import load, save
from ._plugin import Plugin, Step
from ._regressor import ContinualRegressor

__version__ = "0.1.0"

__all__ = [
    "ContinualClassifier",
    "ContinualRegressor",
    "Plugin",
    "Step",
    "__version__",
    "load",
    "save",
]
