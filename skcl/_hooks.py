"""The one dispatcher of the plug-ins' hooks."""

from ._plugin import Plugin
from .penalties import QuadraticPenalty

# The hooks called at every training step, in the order the engine calls them.
STEP_HOOKS = (
    "before_forward",
    "loss",
    "after_task_backward",
    "after_backward",
    "after_step",
)
HOOKS = ("initialize", "begin_task", *STEP_HOOKS, "consolidate", "end_task")


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

    def stepping(self):
        """Name the per-step hooks that the plug-ins override."""
        return [name for name in STEP_HOOKS if self._hooks[name]]

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


def unstacked_hooks(plugin):
    """Name the per-step hooks of ``plugin`` that are not declared stackable.

    A hook is stackable when the class that defines it lists it in its own
    ``stackable_steps``: a subclass that overrides a hook declares it again.
    """
    names = Hooks([plugin]).stepping()
    return [
        name
        for name in names
        if name not in _defining_class(plugin, name).__dict__.get("stackable_steps", ())
    ]


def _defining_class(plugin, name):
    return next(c for c in type(plugin).__mro__ if name in vars(c))
