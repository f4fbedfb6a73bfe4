"""The inner skorch nets: a lean per-task training loop with penalty hooks."""

import math

import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EpochTimer, PrintLog

from .penalties import Penalty

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
        total = None
        for penalty in self.penalties_:
            term = penalty.loss(self)
            if term is not None:
                total = term if total is None else total + term
        return total

    def infer_task(self, X):
        """Forward ``X`` through the module, masking the current task's outputs."""
        y_pred = self.module_(X)
        if self.output_mask_ is not None:
            y_pred = y_pred.masked_fill(~self.output_mask_, float("-inf"))
        return y_pred

    def train_chunk(self, X, y, *, epochs, generator):
        """Train ``epochs`` epochs on the tensors ``X``, ``y`` of the current task."""
        self.notify("on_train_begin", X=X, y=y)
        for _ in range(epochs):
            self.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
            loss = self._train_epoch(X, y, generator)
            self.history.record("task", self.task_index_)
            self.history.record("lr", self.optimizer_.param_groups[0]["lr"])
            self.history.record("train_loss", loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss}.")
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
        step_hooks = [
            p.after_step
            for p in self.penalties_
            if _overrides(p, Penalty, "after_step")
        ]
        task_gradient_hooks = [
            p.after_task_backward
            for p in self.penalties_
            if _overrides(p, Penalty, "after_task_backward")
        ]
        module, optimizer = self.module_, self.optimizer_
        module.train()
        losses = []
        for start in range(0, n, batch_size):
            Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            if batch_hooks:
                self.notify("on_batch_begin", batch=(Xb, yb), training=True)
            optimizer.zero_grad(set_to_none=True)
            y_pred = self.infer_task(Xb)
            if task_gradient_hooks:
                loss = self.get_loss(y_pred, yb, X=Xb, training=False)
                loss.backward()
                for hook in task_gradient_hooks:
                    hook(self)
                penalty = self.penalty_loss()
                if penalty is not None:
                    penalty.backward()
                    loss = loss.detach() + penalty.detach()
            else:
                loss = self.get_loss(y_pred, yb, X=Xb, training=True)
                loss.backward()
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


class _ClassifierNet(_ContinualNetMixin, NeuralNetClassifier):
    pass


class _RegressorNet(_ContinualNetMixin, NeuralNetRegressor):
    pass
