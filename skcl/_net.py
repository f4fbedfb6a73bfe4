"""The inner skorch nets: a lean per-task training loop with plug-in hooks."""

import math

import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EpochTimer, PrintLog

from ._hooks import Hooks
from ._plugin import Step, _map_tensors, mask_outputs
from .penalties._implicit import ImplicitQuadraticStep

_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


def _overrides(obj, base, name):
    return getattr(type(obj), name) is not getattr(base, name)


class _ContinualNetMixin:
    """Trains one chunk of one task at a time, by slicing tensors.

    skorch's per-batch machinery (a DataLoader collating single samples,
    per-batch history records and callback dispatch) costs several times a
    hand-written loop at the small batches continual learning uses. This loop
    shuffles the chunk once per epoch and trains on views of it; batch-level
    callbacks are dispatched only when some callback overrides them. Epoch-level
    callbacks and the history work as in skorch.
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

    def quadratic_value(self):
        """Return the sum of the quadratic penalties' values, or None for none."""
        values = [p.loss(self) for p in Hooks(self.plugins_).quadratic]
        values = [v for v in values if v is not None]
        return sum(values[1:], values[0]) if values else None

    def train_chunk(
        self,
        X,
        y,
        *,
        epochs,
        batch_size,
        lr,
        momentum,
        penalty_step,
        output_mask,
        generator,
    ):
        """Train ``epochs`` epochs on the tensors ``X``, ``y`` of the current task.

        Every optimizer group trains at ``lr`` (and ``momentum``, unless
        None), ``output_mask`` masks the outputs (None for none). The
        quadratic penalties are applied as an implicit step after the
        optimizer's (``penalty_step="implicit"``) or added to the gradient
        (``"explicit"``). The history records, per epoch, the mean task loss
        (``train_loss``) and, with plug-ins that add to the objective, their
        terms (``penalty``: the quadratics' value at the end of the epoch
        plus the mean over its steps of the other terms). FloatingPointError
        is raised as soon as an epoch leaves a non-finite loss or parameter,
        or the trained network gives non-finite outputs on the chunk's first
        batch.
        """
        self.output_mask_ = output_mask
        self.set_step_sizes(lr, momentum)
        hooks = Hooks(self.plugins_)
        implicit = self._implicit_step(hooks) if penalty_step == "implicit" else None
        self.notify("on_train_begin", X=X, y=y)
        for _ in range(epochs):
            self.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
            loss, terms = self._train_epoch(
                X, y, batch_size, generator, hooks, implicit
            )
            self.end_epoch(loss, terms, hooks)
        self._check_finite_outputs(X[:batch_size])
        self.notify("on_train_end", X=X, y=y)

    def set_step_sizes(self, lr, momentum):
        """Train every optimizer group at ``lr`` (and ``momentum``, unless None)."""
        for group in self.optimizer_.param_groups:
            group["lr"] = lr
            if momentum is not None and "momentum" in group:
                group["momentum"] = momentum

    def end_epoch(self, loss, terms, hooks):
        """Record an epoch's mean task ``loss`` and other ``terms``; check them.

        Raises FloatingPointError if the loss or a parameter is not finite.
        """
        self.history.record("task", self.task_index_)
        self.history.record("lr", self.optimizer_.param_groups[0]["lr"])
        self.history.record("train_loss", loss)
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

    def _train_epoch(self, X, y, batch_size, generator, hooks, implicit):
        """Train one epoch; return the mean task loss and mean of the other terms."""
        n = len(X)
        order = torch.randperm(n, generator=generator).to(X.device)
        callbacks = [cb for _, cb in self.callbacks_]
        batch_hooks = any(
            _overrides(cb, Callback, hook) for cb in callbacks for hook in _BATCH_HOOKS
        )
        before_forward = hooks["before_forward"]
        task_gradient_hooks = hooks["after_task_backward"]
        after_backward = hooks["after_backward"]
        after_step = hooks["after_step"]
        explicit = hooks.quadratic if implicit is None else []
        module, optimizer, criterion = self.module_, self.optimizer_, self.criterion_
        params = [p for p in module.parameters() if p.requires_grad]
        workspace = [torch.empty_like(p) for p in params] if explicit else None
        # Callbacks may keep a batch: they get fresh tensors, the loop reused ones.
        batches = _Batches(X, y, order, batch_size, reuse=not batch_hooks)
        module.train()
        losses, terms = [], []
        for Xb, yb in batches:
            if batch_hooks:
                self.notify("on_batch_begin", batch=(Xb, yb), training=True)
            optimizer.zero_grad(set_to_none=True)
            step = Step(Xb, yb, self.output_mask_)
            for hook in before_forward:
                hook(self, step)
            step.logits = module(step.inputs)
            y_pred = mask_outputs(step.logits, step.output_mask)
            step.loss = loss = criterion(y_pred, step.targets)
            extra = hooks.loss(self, step)
            if extra is None or not task_gradient_hooks:
                (loss if extra is None else loss + extra).backward()
                for hook in task_gradient_hooks:
                    hook(self, step)
            else:
                loss.backward()
                for hook in task_gradient_hooks:
                    hook(self, step)
                extra.backward()
            if hooks.quadratic:
                _fill_missing_gradients(params)
            for penalty in explicit:
                penalty.add_gradient(self, params, workspace)
            for hook in after_backward:
                hook(self, step)
            if batch_hooks:
                self.notify(
                    "on_grad_computed",
                    named_parameters=list(module.named_parameters()),
                    batch=(Xb, yb),
                    training=True,
                )
            if implicit is not None:
                implicit.before_step()
            optimizer.step()
            if implicit is not None:
                implicit.apply()
            for hook in after_step:
                hook(self, step)
            losses.append(loss.detach())
            if extra is not None:
                terms.append(extra.detach())
            if batch_hooks:
                self.notify(
                    "on_batch_end",
                    batch=(Xb, yb),
                    training=True,
                    loss=loss,
                    y_pred=y_pred,
                )
        mean_terms = torch.stack(terms).mean().item() if terms else 0.0
        return torch.stack(losses).mean().item(), mean_terms


class _Batches:
    """The mini-batches of ``X``, ``y`` in ``order``, gathered row by row.

    Gathering each batch (into one reused buffer with ``reuse``) costs a
    fraction of copying the whole shuffled chunk once per epoch.
    """

    def __init__(self, X, y, order, batch_size, *, reuse):
        self.X, self.y, self.order, self.batch_size = X, y, order, batch_size
        size = min(batch_size, len(X))
        self.buffers = (
            (X.new_empty((size, *X.shape[1:])), y.new_empty((size, *y.shape[1:])))
            if reuse
            else None
        )

    def __iter__(self):
        for start in range(0, len(self.X), self.batch_size):
            rows = self.order[start : start + self.batch_size]
            if self.buffers is None:
                yield self.X[rows], self.y[rows]
                continue
            Xb, yb = (b[: len(rows)] for b in self.buffers)
            torch.index_select(self.X, 0, rows, out=Xb)
            torch.index_select(self.y, 0, rows, out=yb)
            yield Xb, yb


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


def _fill_missing_gradients(params):
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


class _ClassifierNet(_ContinualNetMixin, NeuralNetClassifier):
    pass


class _RegressorNet(_ContinualNetMixin, NeuralNetRegressor):
    pass
