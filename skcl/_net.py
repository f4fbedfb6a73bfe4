"""The inner skorch nets: a lean per-task training loop with plug-in hooks."""

import contextlib
import math

import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import EpochTimer, PrintLog

from ._engine._chunk import train_chunk
from ._engine._optimizers import reset_state
from ._hooks import Hooks
from ._plugin import _map_tensors, mask_outputs
from .penalties._implicit import ImplicitQuadraticStep


class _ContinualNetMixin:
    """Trains one chunk of one task at a time, through skcl's one engine.

    skorch's per-batch machinery (a DataLoader collating single samples,
    per-batch history records and callback dispatch) costs several times a
    hand-written loop at the small batches continual learning uses: the
    engine (:mod:`skcl._engine`) shuffles the chunk once per epoch and
    trains on views of it; batch-level callbacks are dispatched only when
    some callback overrides them. Epoch-level callbacks and the history work
    as in skorch.
    """

    # Everything a chunk of training changes, for skcl._state.
    _training_state = (
        "module_",
        "optimizer_",
        "history_",
        "callbacks_",
        "plugins_",
        "task_index_",
        "output_mask_",
    )

    # The chunk's generator while a chunk runs (drawing_from); None outside,
    # where a hook called by hand draws from torch's global generator.
    generator_ = None

    @property
    def _default_callbacks(self):
        return [("epoch_timer", EpochTimer()), ("print_log", PrintLog())]

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = self.criterion_(y_pred, y_true)
        if training:
            quadratic = self.quadratic_value()
            if quadratic is not None:
                loss = loss + quadratic
        return loss

    def infer_task(self, X):
        """Forward ``X`` through the module, masking the current task's outputs."""
        return mask_outputs(self.module_(X), self.output_mask_)

    def initialize_stream(self, plugins):
        """Start a stream with ``plugins``: no task yet."""
        self.plugins_ = plugins
        self.task_index_ = -1
        self.output_mask_ = None
        Hooks(plugins).notify("initialize", self)

    def begin_task(self, *, reset_optimizer):
        """Open the next task."""
        self.task_index_ += 1
        if self.task_index_ > 0 and reset_optimizer:
            self.initialize_optimizer()
        Hooks(self.plugins_).notify("begin_task", self)

    def end_task(self):
        """Close the current task: the network holds its final parameters."""
        Hooks(self.plugins_).notify("end_task", self)

    def consolidate(self, X, y, task):
        """Let the plug-ins learn from the chunk just trained; check their state."""
        for plugin in self.plugins_:
            plugin.consolidate(self, X, y)
            _check_finite_state(plugin, task)

    @contextlib.contextmanager
    def drawing_from(self, generator):
        """Give the plug-ins ``generator`` as ``generator_`` inside the block.

        The estimator opens one around each chunk (its task-level hooks,
        training and :meth:`consolidate`): plug-ins draw their random
        numbers with ``generator=net.generator_``.
        """
        self.generator_ = generator
        try:
            yield
        finally:
            del self.generator_

    def quadratic_value(self):
        """Return the sum of the quadratic penalties' values, or None for none."""
        values = [p.loss(self) for p in Hooks(self.plugins_).quadratic]
        values = [v for v in values if v is not None]
        return sum(values[1:], values[0]) if values else None

    def train_chunk(self, X, y, settings, generator):
        """Train the current task on the tensors ``X``, ``y`` with ``settings``.

        ``settings`` is a :class:`ChunkSettings`; ``generator`` draws the
        batch order, ``generator_`` (:meth:`drawing_from`) the rest. The
        engine (:func:`skcl._engine.train_chunk`, the loop every K shares)
        trains it. The quadratic penalties are applied
        as an implicit step after the optimizer's (``penalty_step=
        "implicit"``) or added to the gradient (``"explicit"``). The history
        records, per epoch, the mean task loss (``train_loss``) and, with
        plug-ins that add to the objective, their terms (``penalty``: the
        quadratics' value at the end of the epoch plus the mean over its
        steps of the other terms). FloatingPointError is raised as soon as
        an epoch leaves a non-finite loss or parameter, or the trained
        network gives non-finite outputs on the chunk's first batch.
        """
        (error,) = train_chunk([self], X, y, [settings], [generator])
        if error is not None:
            raise error

    def set_step_sizes(self, lr, momentum):
        """Train every optimizer group at ``lr`` (and ``momentum``, unless None)."""
        for group in self.optimizer_.param_groups:
            group["lr"] = lr
            if momentum is not None and "momentum" in group:
                group["momentum"] = momentum

    def reset_optimizer_state(self, masks):
        """Give the masked entries of the parameters a fresh optimizer state.

        For plug-ins that re-initialize some weights in their per-step hooks
        (:class:`skcl.plasticity.ReDO`): ``masks`` holds one boolean tensor
        (or None for none) per trainable parameter, in module order; the
        optimizer's per-entry state there (momentum, Adam's moments,
        Adagrad's sums) is set to the value of a parameter that has not
        stepped. Step counts are per tensor and stay. In a stack, the
        candidate's view of the net resets its slice of the stacked optimizer.
        """
        params = [p for p in self.module_.parameters() if p.requires_grad]
        reset_state(self.optimizer_, params, masks)

    def end_epoch(self, loss, terms, own_term, hooks):
        """Record an epoch's mean task ``loss`` and other ``terms``; check them.

        ``own_term`` is the first value of the plug-ins' terms that was not
        finite at a step whose task loss was (0.0 if none was).

        Raises FloatingPointError if the loss, a parameter or the plug-ins'
        own terms are not finite, naming the plug-ins for their terms.
        """
        self.history.record("task", self.task_index_)
        self.history.record("lr", self.optimizer_.param_groups[0]["lr"])
        self.history.record("train_loss", loss)
        if not math.isfinite(own_term):
            names = " + ".join(type(h.__self__).__name__ for h in hooks["loss"])
            raise PluginTermDiverged(
                f"the loss term of {names} became {own_term} at a step where the "
                "task loss was finite.",
                names,
            )
        if not math.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss}.")
        self._check_finite_parameters()
        if hooks.quadratic or hooks["loss"]:
            with torch.no_grad():
                quadratic = self.quadratic_value()
            self.history.record(
                "penalty", terms + (0.0 if quadratic is None else quadratic.item())
            )
        self.notify("on_epoch_end", dataset_train=None, dataset_valid=None)

    def quadratic_forms(self, hooks):
        """Return ``(lam, centres, weights)`` of each active quadratic penalty."""
        return [
            (float(penalty.lam), form[0], form[1])
            for penalty in hooks.quadratic
            if (form := penalty.active_quadratic(self)) is not None
        ]

    def _implicit_step(self, hooks):
        forms = self.quadratic_forms(hooks)
        if not forms:
            return None
        params = [p for p in self.module_.parameters() if p.requires_grad]
        return ImplicitQuadraticStep(params, self.optimizer_, forms)

    def _check_finite_parameters(self):
        params = [p.detach() for p in self.module_.parameters()]
        if (
            params
            and not torch.isfinite(torch.stack(torch._foreach_norm(params))).all()
        ):
            raise FloatingPointError("a parameter of the network became non-finite.")

    @torch.no_grad()
    def _check_finite_outputs(self, X):
        module = self.module_
        training = module.training
        module.eval()
        try:
            finite = bool(torch.isfinite(module(X)).all())
        finally:
            module.train(training)
        if not finite:
            raise FloatingPointError(
                "the trained network's outputs on the chunk are not finite."
            )


class PluginTermDiverged(FloatingPointError):
    """A plug-in's own loss term became non-finite; ``plugins`` names them."""

    def __init__(self, message, plugins):
        super().__init__(message)
        self.plugins = plugins


def _check_finite_state(plugin, task):
    """Raise FloatingPointError if a tensor of ``plugin``'s state is not finite."""
    for name, value in vars(plugin).items():
        tensors = []
        _map_tensors(value, tensors.append)
        if any(
            isinstance(t, torch.Tensor)
            and t.is_floating_point()
            and not torch.isfinite(t).all()
            for t in tensors
        ):
            raise FloatingPointError(
                f"{type(plugin).__name__}'s {name.strip('_') or name} is not finite "
                f"after training on task {task!r}: an input of extreme magnitude "
                "(near the float32 limit) can make an importance overflow; rescale "
                "the inputs. The estimator was restored to its state before this "
                "task's chunk."
            )


class _ClassifierNet(_ContinualNetMixin, NeuralNetClassifier):
    pass


class _RegressorNet(_ContinualNetMixin, NeuralNetRegressor):
    pass
