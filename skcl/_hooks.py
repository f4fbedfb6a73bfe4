"""The one dispatcher of the plug-ins' hooks."""

from ._plugin import Plugin
from .penalties import QuadraticPenalty

# The hooks called at every training step, in the order the engine calls them.
STEP_HOOKS = (
    "before_forward",
    "task_loss",
    "loss",
    "after_task_backward",
    "after_backward",
    "after_step",
)
HOOKS = ("initialize", "begin_task", *STEP_HOOKS, "consolidate", "end_task")
# The per-step hooks that a stack of candidates can run (terms added to the
# loss cannot: the stacked backend differentiates the task loss alone).
STACKABLE_STEP_HOOKS = (
    "before_forward",
    "after_task_backward",
    "after_backward",
    "after_step",
)

# The per-step hooks that can run once per candidate in a stack (a replaced
# task loss cannot: the stacked backend computes the criterion itself).
CANDIDATE_STEP_HOOKS = tuple(name for name in STEP_HOOKS if name != "task_loss")


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

    def task_loss(self, net, step):
        """Return the loss a plug-in trains on in place of the criterion, or None.

        At most one plug-in replaces it (the estimator checks its parameters).
        """
        replacing = self._hooks["task_loss"]
        return replacing[0](net, step) if replacing else None

    def loss(self, net, step):
        """Return the sum of the plug-ins' loss terms, or None if there is none."""
        total = None
        for hook in self._hooks["loss"]:
            term = hook(net, step)
            if term is not None:
                total = term if total is None else total + term
        return total


def unstacked_hooks(plugin):
    """Name the per-step hooks of ``plugin`` that cannot run in a stack.

    A hook runs once on the whole stack when it is one of
    ``STACKABLE_STEP_HOOKS`` and the class that defines it lists it in its
    own ``stackable_steps``, or once per candidate when that class lists it
    in ``candidate_steps``: a subclass that overrides a hook declares it
    again. A plug-in that declares both ways (ER) runs on the whole stack
    where its candidates draw the same batches and per candidate elsewhere:
    each hook must then be declared both ways.
    """
    stacked, per_candidate = stacked_hooks(plugin), candidate_hooks(plugin)
    hooks = Hooks([plugin]).stepping()
    if stacked and per_candidate:
        return [
            name for name in hooks if name not in stacked or name not in per_candidate
        ]
    return [name for name in hooks if name not in stacked and name not in per_candidate]


def stacked_hooks(plugin):
    """Name the per-step hooks of ``plugin`` that run once on the whole stack."""
    return [
        name
        for name in _declared(plugin, "stackable_steps")
        if name in STACKABLE_STEP_HOOKS
    ]


def candidate_hooks(plugin):
    """Name the per-step hooks of ``plugin`` that run once per candidate."""
    return [
        name
        for name in _declared(plugin, "candidate_steps")
        if name in CANDIDATE_STEP_HOOKS
    ]


def runs_per_candidate(plugin, shared_rows):
    """Whether ``plugin``'s per-step hooks run once per candidate in a stack
    whose candidates draw the same batches (``shared_rows``) or not."""
    if not candidate_hooks(plugin):
        return False
    return not (shared_rows and stacked_hooks(plugin))


def _declared(plugin, attribute):
    """The overridden per-step hooks that their class lists in ``attribute``."""
    return [
        name
        for name in Hooks([plugin]).stepping()
        if name in vars(_defining_class(plugin, name)).get(attribute, ())
    ]


def _defining_class(plugin, name):
    return next(c for c in type(plugin).__mro__ if name in vars(c))
