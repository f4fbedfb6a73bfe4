"""The plug-in protocol that penalties, replay and functional regularizers share."""

import copy

import torch
from sklearn.base import BaseEstimator


def _is_state_object(value):
    """An object whose state is declared (e.g. a replay memory): moved whole."""
    return hasattr(type(value), "_training_state") and hasattr(value, "to")


def _map_tensors(value, fn):
    """Apply ``fn`` to the tensors, modules and state objects in lists and dicts."""
    if isinstance(value, (torch.Tensor, torch.nn.Module)) or _is_state_object(value):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _tensors(value):
    """Return the tensors in ``value``: tensors, modules' state and nested lists."""
    found = []
    for item in _flatten(value):
        if isinstance(item, torch.nn.Module):
            found.extend(item.state_dict().values())
        elif isinstance(item, torch.Tensor):
            found.append(item)
    return found


def _flatten(value):
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


def check_finite(value, where, *, nonnegative=False):
    """Raise ValueError naming ``where`` unless ``value``'s float tensors are finite.

    ``value`` is a tensor, a module (its parameters and buffers) or lists and
    dicts of them; with ``nonnegative``, every value must also be >= 0.
    """
    for tensor in _tensors(value):
        if not tensor.is_floating_point():
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{where} holds NaN or infinite values.")
        if nonnegative and bool((tensor < 0).any()):
            raise ValueError(f"{where} holds negative values.")


def _check_aligned(value, trainable, where):
    """Raise ValueError if a list or dict with one tensor per trainable
    parameter (a ``(name, parameter)`` list) holds one of another shape or dtype."""
    if isinstance(value, (list, tuple)) and len(value) == len(trainable):
        pairs = zip(value, (p for _, p in trainable), strict=True)
    elif isinstance(value, dict) and value.keys() == {n for n, _ in trainable}:
        pairs = ((value[n], p) for n, p in trainable)
    else:
        return
    for tensor, param in pairs:
        if isinstance(tensor, torch.Tensor) and (
            tensor.shape != param.shape or tensor.dtype != param.dtype
        ):
            raise ValueError(
                f"{where} holds a {tensor.dtype} tensor of shape {tuple(tensor.shape)} "
                f"for a parameter of shape {tuple(param.shape)} ({param.dtype})."
            )


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return copy.deepcopy(value).to("cpu")


class Step:
    """One training step, as the plug-ins' per-step hooks see it.

    Attributes
    ----------
    X, y : Tensor
        The current mini-batch of the task being trained (inputs and encoded
        targets).
    inputs, targets : Tensor
        What the network trains on at this step: the mini-batch, followed by
        any rows a plug-in added in :meth:`Plugin.before_forward` (replayed
        samples).
    output_mask : Tensor or None
        The outputs trained: a boolean mask of shape ``(n_outputs,)`` for every
        row or ``(len(inputs), n_outputs)`` row by row; None for all.
    logits : Tensor
        The network's outputs on ``inputs``, before masking (set by the
        forward pass).
    loss : Tensor
        The task loss: the criterion on the masked outputs and ``targets``, or
        the loss a plug-in's :meth:`Plugin.task_loss` returned in its place.

    Examples
    --------
    >>> import torch
    >>> from skcl import Step
    >>> step = Step(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), None)
    >>> step.inputs is step.X, step.logits is None
    (True, True)
    """

    __slots__ = ("X", "inputs", "logits", "loss", "output_mask", "targets", "y")

    def __init__(self, X, y, output_mask):
        self.X, self.y = X, y
        self.inputs, self.targets = X, y
        self.output_mask = output_mask
        self.logits = self.loss = None


def mask_outputs(logits, mask):
    """Return ``logits`` with the outputs outside ``mask`` (None for none) at -inf."""
    return logits if mask is None else logits.masked_fill(~mask, float("-inf"))


class Plugin(BaseEstimator):
    """Base of everything that plugs into a continual estimator's training.

    Penalties (:class:`skcl.penalties.Penalty`), replay strategies
    (:mod:`skcl.replay`) and functional regularizers all follow this
    protocol. A plug-in is a small cloneable object: its constructor only
    stores hyper-parameters (so ``penalty__lam`` or ``replay__memory_size``
    work in ``set_params`` and in a grid) and its fitted state lives in
    attributes ending with an underscore. The estimator calls its hooks with
    the inner skorch net ``net`` (``net.module_`` is the network being
    trained, ``net.task_index_`` the 0-based index of the current task) in
    this order:

    - :meth:`initialize` once, when training starts from scratch, after the
      network is built;
    - :meth:`begin_task` when a task opens;
    - at every training step, with the step's :class:`Step`:
      :meth:`before_forward` (may add rows to what the network trains on),
      the forward pass, :meth:`task_loss` (a loss of the plug-in's own in
      place of the criterion; one plug-in at most), the task loss,
      :meth:`loss` (terms added to the task loss), the backward pass,
      :meth:`after_task_backward` (the task loss's gradient alone is in
      ``.grad``; the terms' is added after it),
      :meth:`after_backward` (the whole gradient is in ``.grad``: gradient
      surgery), the optimizer's step, :meth:`after_step`;
    - :meth:`consolidate` after each chunk of a task has been trained (every
      ``partial_fit`` call, one per task in ``fit``), with that chunk's
      inputs and encoded targets as tensors on the network's device;
    - :meth:`end_task` when the task is over: the next task is about to
      open and the network holds this task's final parameters;
    - at prediction, :meth:`infer` on the network's outputs (a plug-in that
      predicts otherwise, such as :class:`~skcl.replay.ICaRL`'s nearest mean
      of exemplars or :class:`~skcl.replay.BiC`'s bias correction).

    Every hook does nothing by default; a plug-in overrides what it needs,
    and only overridden per-step hooks are called. Everything a plug-in
    holds in attributes that are not constructor arguments is its state:
    rolled back with a failed or interrupted chunk, saved by
    :func:`skcl.save`, moved by :meth:`to` (tensors, modules and state
    objects such as :class:`skcl.replay.ReservoirMemory`, also inside lists
    and dicts) and pickled on the CPU.

    Random numbers come from ``net.generator_``, a CPU ``torch.Generator``
    that the estimator seeds for each chunk from its ``random_state``: it is
    set while a chunk trains and during that chunk's task-level hooks
    (:meth:`begin_task`, :meth:`consolidate`, :meth:`end_task`; and
    :meth:`initialize`; None outside them, where a hook called by hand draws
    from the global generator), and a plug-in draws with
    ``torch.rand(..., generator=net.generator_)`` (on the CPU; move the
    result to the device), never from torch's global generator: fits in
    threads then equal the same fits in turn. ``torch.nn.init``'s functions
    take ``generator=`` too; the built-in plug-ins that call a layer's
    ``reset_parameters`` (which draws globally) run it inside the engine's
    ``drawing_globally(net.generator_)``: under a process-wide lock, with
    the global generator forked and loaded with ``generator_``'s state.

    A plug-in that re-initializes some weights in a per-step hook
    (:class:`~skcl.plasticity.ReDO`) resets their optimizer state (momentum,
    moments) with ``net.reset_optimizer_state(masks)``: one boolean tensor
    (or None) per trainable parameter, in module order; a candidate's view
    of the net in a stack has the method too.

    One engine trains a single model and a stack of K models alike (the
    vectorized regime search, the seeds of ``skcl benchmark``). In a stack,
    every plug-in's task-level hooks run per candidate, unchanged. A class
    declares how its per-step hooks run in a stack, in one of two public
    attributes (tuples of hook names, empty by default):

    - ``candidate_steps``: once per candidate, with that candidate's own
      plug-in, a net whose ``module_`` is the candidate's network (calling
      it inside :meth:`loss` backpropagates into the stack; in the other
      hooks its ``parameters()`` carry the candidate's gradients as
      ``.grad``, changed in place), ``criterion_``, ``task_index_`` and
      ``output_mask_``, and a :class:`Step` of the candidate's rows, logits
      and loss. Its ``generator_`` is the candidate's own (candidates with
      one ``random_state`` each start from one state and must draw alike). Any
      per-step hook (rows added in :meth:`before_forward` must be as many
      for every candidate); the simplest to adopt
      (:class:`~skcl.penalties.LwF`, :class:`~skcl.replay.DERPP`,
      :class:`~skcl.replay.AGEM`).
    - ``stackable_steps``: once for the whole stack (:meth:`before_forward`,
      :meth:`after_task_backward`, :meth:`after_backward`,
      :meth:`after_step`; :class:`~skcl.penalties.SI`,
      :class:`~skcl.replay.ER`). The hook receives a net whose ``module_``
      yields the stacked parameters, ``(K, *shape)`` each, with their
      ``.grad``, and the stack's :class:`Step` (rows shared ``(n, ...)``
      or per candidate ``(K, n, ...)``, ``loss`` of shape ``(K,)``); the
      plug-in's state is stacked for the chunk (lists of parameter-shaped
      tensors as ``(K, ...)`` tensors per parameter, other tensors along a
      new first dimension, any other value, such as ER's memory, equal in
      every candidate and shared, which needs candidates that draw the same
      batches) and written back to each candidate after it. Its
      hyper-parameters are the first candidate's: a stacked hook must not
      read one that differs between candidates. Its ``generator_`` is the
      one that candidates seeded alike share; candidates seeded apart have
      one each, and reading it raises RuntimeError (a plug-in that draws
      declares its hooks in ``candidate_steps`` too, as ER does).

    :meth:`task_loss` runs in neither: a plug-in that replaces the task
    loss trains its candidates one by one.

    A class may declare its hooks both ways (:class:`~skcl.replay.ER`): they
    run on the whole stack where the candidates draw the same batches (one
    shared memory) and per candidate otherwise. The declaration is per
    class: a subclass that overrides a hook lists it again. A plug-in with
    a per-step hook it does not declare makes its candidates train one by
    one (the reason is in the search's ``cv_results_``); alone, it trains
    on the network's own autograd.

    Examples
    --------
    A plug-in that counts the steps of each task (plug-ins other than replay
    go in ``penalty``):

    >>> import numpy as np
    >>> from skcl import ContinualClassifier, Plugin
    >>> class StepCounter(Plugin):
    ...     def initialize(self, net):
    ...         self.steps_ = []
    ...     def begin_task(self, net):
    ...         self.steps_.append(0)
    ...     def after_step(self, net, step):
    ...         self.steps_[-1] += 1
    >>> X, y = np.random.RandomState(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> clf = ContinualClassifier(penalty=StepCounter(), batch_size=10, max_epochs=2)
    >>> clf.fit(X, y, task_id=np.repeat([0, 1], 20)).penalty_.steps_
    [4, 4]
    """

    stackable_steps = ()
    candidate_steps = ()

    def to(self, device):
        """Move the plug-in's state to ``device``; return self."""
        moved = _map_tensors(vars(self), lambda t: t.to(device))
        vars(self).update(moved)
        return self

    def __getstate__(self):
        state = super().__getstate__()
        return _map_tensors(state, _to_cpu)

    def check_state(self, net, X, y) -> None:
        """Raise ValueError naming the attribute unless the state works with ``net``.

        :func:`skcl.load` calls it once the plug-in's state is rebuilt from a
        file, before the estimator is returned. ``X`` and ``y`` are empty
        batches with the shapes and dtypes of the chunks the estimator trains
        on (as :meth:`consolidate` receives them). By default, every float
        tensor of the state (also in modules, lists and dicts) must be
        finite, and a list or dict with one tensor per trainable parameter
        must hold tensors of their shapes and dtypes; a subclass extends the
        check with what its state promises (signs, counts, classes). State
        objects with their own check, such as a replay memory, are left to
        their plug-in.
        """
        params = self.get_params(deep=False)
        trainable = [
            (n, p) for n, p in net.module_.named_parameters() if p.requires_grad
        ]
        for name, value in vars(self).items():
            if name not in params and not _is_state_object(value):
                _check_aligned(value, trainable, name)
                check_finite(value, name)

    def initialize(self, net) -> None:
        """Reset the fitted state at the start of training."""

    def begin_task(self, net) -> None:
        """Open task ``net.task_index_``."""

    def before_forward(self, net, step: Step) -> None:
        """Change what the network trains on (``step.inputs``, ``targets``...)."""

    def task_loss(self, net, step: Step) -> torch.Tensor | None:
        """Return the loss to train on in place of the criterion, or None.

        Called after the forward pass (``step.logits`` is set); what it
        returns becomes ``step.loss``, the history's ``train_loss`` and the
        gradient that :meth:`after_task_backward` reads. For a method whose
        loss is not the criterion plus terms (:class:`~skcl.replay.ICaRL`'s
        binary cross-entropy): returning a term that cancels the criterion
        from :meth:`loss` would compute both.
        """
        return None

    def loss(self, net, step: Step) -> torch.Tensor | None:
        """Return a term to add to the task loss at this step, or None."""
        return None

    def after_task_backward(self, net, step: Step) -> None:
        """Read the task loss's gradient (in ``.grad``) at each step."""

    def after_backward(self, net, step: Step) -> None:
        """Change the gradient (in ``.grad``) before the optimizer's step."""

    def after_step(self, net, step: Step) -> None:
        """Act after each optimizer step."""

    def consolidate(self, net, X: torch.Tensor, y: torch.Tensor) -> None:
        """Learn from a chunk ``(X, y)`` of the current task once it is trained."""

    def end_task(self, net) -> None:
        """Close task ``net.task_index_``; the network holds its final parameters."""

    def infer(self, net, X: torch.Tensor, outputs: torch.Tensor, task: int):
        """Return the outputs that predictions are made from.

        Called by the estimator's ``predict``, ``predict_proba`` and
        ``score`` (and so by :func:`skcl.metrics.accuracy_matrix`) on each
        batch of inputs ``X``, in eval mode without gradients, with
        ``outputs`` the network's (or the previous plug-in's ``infer``, in
        the order of ``net.plugins_``). ``task`` is the position in
        ``tasks_`` of the task at whose end the network's parameters were
        taken (:meth:`~skcl.ContinualClassifier.use_snapshot`; the current
        task otherwise), -1 for the initial parameters: a plug-in whose
        prediction has state of its own answers with its state of that
        task. The multi-head mask applies after. By default, ``outputs``
        unchanged.
        """
        return outputs
