"""The inner skorch nets: a lean per-task training loop with penalty hooks."""

import math

import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EpochTimer, PrintLog

from .penalties import Penalty, QuadraticPenalty

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

    @property
    def _default_callbacks(self):
        return [("epoch_timer", EpochTimer()), ("print_log", PrintLog())]

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = self.criterion_(y_pred, y_true)
        if training:
            penalty = self.penalty_loss()
            if penalty is not None:
                loss = loss + penalty
        return loss

    def penalty_loss(self):
        """Return the sum of the penalties' terms, or None if there is none."""
        return _sum_terms(self.penalties_, self)

    def infer_task(self, X):
        """Forward ``X`` through the module, masking the current task's outputs."""
        y_pred = self.module_(X)
        if self.output_mask_ is not None:
            y_pred = y_pred.masked_fill(~self.output_mask_, float("-inf"))
        return y_pred

    def train_chunk(self, X, y, *, epochs, generator):
        """Train ``epochs`` epochs on the tensors ``X``, ``y`` of the current task.

        The history records, per epoch, the mean task loss (``train_loss``)
        and, with penalties, their value at the end of the epoch (``penalty``).
        """
        self.notify("on_train_begin", X=X, y=y)
        for _ in range(epochs):
            self.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
            loss = self._train_epoch(X, y, generator)
            self.history.record("task", self.task_index_)
            self.history.record("lr", self.optimizer_.param_groups[0]["lr"])
            self.history.record("train_loss", loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss}.")
            if self.penalties_:
                with torch.no_grad():
                    penalty = self.penalty_loss()
                self.history.record(
                    "penalty", 0.0 if penalty is None else penalty.item()
                )
            self.notify("on_epoch_end", dataset_train=None, dataset_valid=None)
        self.notify("on_train_end", X=X, y=y)

    def _train_epoch(self, X, y, generator):
        n = len(X)
        batch_size = n if self.batch_size in (None, -1) else self.batch_size
        order = torch.randperm(n, generator=generator).to(X.device)
        X, y = X[order], y[order]
        callbacks = [cb for _, cb in self.callbacks_]
        batch_hooks = any(
            _overrides(cb, Callback, hook) for cb in callbacks for hook in _BATCH_HOOKS
        )
        penalties = self.penalties_
        step_hooks = [
            p.after_step for p in penalties if _overrides(p, Penalty, "after_step")
        ]
        task_gradient_hooks = [
            p.after_task_backward
            for p in penalties
            if _overrides(p, Penalty, "after_task_backward")
        ]
        quadratic = [p for p in penalties if isinstance(p, QuadraticPenalty)]
        generic = [p for p in penalties if not isinstance(p, QuadraticPenalty)]
        module, optimizer = self.module_, self.optimizer_
        params = [p for p in module.parameters() if p.requires_grad]
        workspace = [torch.empty_like(p) for p in params] if quadratic else None
        module.train()
        losses = []
        for start in range(0, n, batch_size):
            Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            if batch_hooks:
                self.notify("on_batch_begin", batch=(Xb, yb), training=True)
            optimizer.zero_grad(set_to_none=True)
            y_pred = self.infer_task(Xb)
            loss = self.criterion_(y_pred, yb)
            extra = _sum_terms(generic, self)
            if extra is None or not task_gradient_hooks:
                (loss if extra is None else loss + extra).backward()
                for hook in task_gradient_hooks:
                    hook(self)
            else:
                loss.backward()
                for hook in task_gradient_hooks:
                    hook(self)
                extra.backward()
            if quadratic:
                _fill_missing_gradients(params)
                for penalty in quadratic:
                    penalty.add_gradient(self, params, workspace)
            if batch_hooks:
                self.notify(
                    "on_grad_computed",
                    named_parameters=list(module.named_parameters()),
                    batch=(Xb, yb),
                    training=True,
                )
            optimizer.step()
            for hook in step_hooks:
                hook(self)
            losses.append(loss.detach())
            if batch_hooks:
                self.notify(
                    "on_batch_end",
                    batch=(Xb, yb),
                    training=True,
                    loss=loss,
                    y_pred=y_pred,
                )
        return torch.stack(losses).mean().item()


def _sum_terms(penalties, net):
    total = None
    for penalty in penalties:
        term = penalty.loss(net)
        if term is not None:
            total = term if total is None else total + term
    return total


def _fill_missing_gradients(params):
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


class _ClassifierNet(_ContinualNetMixin, NeuralNetClassifier):
    pass


class _RegressorNet(_ContinualNetMixin, NeuralNetRegressor):
    pass
