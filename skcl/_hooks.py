"""The one dispatcher of the plug-ins' hooks."""

from ._plugin import Plugin
from .penalties import QuadraticPenalty

HOOKS = (
    "initialize",
    "begin_task",
    "before_forward",
    "loss",
    "after_task_backward",
    "after_backward",
    "after_step",
    "consolidate",
    "end_task",
)


class Hooks:
    """The hooks that a list of plug-ins overrides, in the plug-ins' order.

    A quadratic penalty's ``loss`` is its value, not a term to backpropagate:
    the training step applies its quadratic (implicitly or as a gradient).
    """

    def __init__(self, plugins):
        self.plugins = list(plugins)
        self.quadratic = [p for p in self.plugins if isinstance(p, QuadraticPenalty)]
        self._hooks = {
            name: [
                getattr(p, name)
                for p in self.plugins
                if getattr(type(p), name) is not getattr(Plugin, name)
                and not (name == "loss" and isinstance(p, QuadraticPenalty))
            ]
            for name in HOOKS
        }

    def __getitem__(self, name):
        """Return the overriding hooks ``name`` as bound methods."""
        return self._hooks[name]

    def notify(self, name, *args):
        for hook in self._hooks[name]:
            hook(*args)

    def loss(self, net, step):
        """Return the sum of the plug-ins' loss terms, or None if there is none."""
        total = None
        for hook in self._hooks["loss"]:
            term = hook(net, step)
            if term is not None:
                total = term if total is None else total + term
        return total
