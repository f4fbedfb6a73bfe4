"""The one training loop: a chunk of the current task, for a stack of K >= 1 nets.

Every estimator's ``fit`` and ``partial_fit`` (K = 1) and every stacked
search (K > 1) train through :func:`train_chunk`. The step pipeline is
written once in :func:`_train_epoch`; a backend does the forward and
backward passes and the optimizer step:

- :class:`_StackedBackend`: the stacked parameters of every candidate as one
  ``(K, P)`` tensor, batched matrix products (or ``torch.func.vmap``), the
  stacked optimizer. It serves any K, and K = 1 where it applies, since it
  is the faster path.
- :class:`_ModuleBackend`: K = 1 on the net's own module and optimizer with
  plain autograd, for whatever the stacked backend cannot do
  (:func:`stacked_reason` says what).
"""

import contextlib
import copy

import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from torch import nn

from .._hooks import Hooks, runs_per_candidate, unstacked_hooks
from .._plugin import Step, mask_outputs
from .._state import equal_values, state_names
from ..callbacks._prequential import PrequentialScore
from ._by_hand import by_hand
from ._candidates import CandidateHooks
from ._network import StackedNetwork, _batched_plan
from ._optimizers import StackedOptimizer, stacked_optimizer_reason
from ._quadratic import StackedQuadratic
from ._random import drawing_globally
from ._settings import stacking_reason

_BATCH_CALLBACKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


def train_chunk(nets, X, y, settings, generators, own_data=False):
    """Train ``nets`` on their current chunk ``X``, ``y``; return their errors.

    Each net has its ``settings`` entry (:class:`ChunkSettings`); they share
    the chunk (or, with ``own_data``, ``X`` and ``y`` hold one chunk per net
    along a first dimension, all of one shape) and the shared settings.
    ``generators`` draw the batch order: one for every net (they share it)
    or one per net. Each net's ``generator_`` draws its dropout masks and
    its plug-ins' random numbers; nets seeded alike share one generator
    object (one mask for all, each candidate's hooks from one state). The
    nets' parameters, optimizer state, plug-in state and histories end as
    training each alone would leave them.

    Returns
    -------
    list
        Per net, None or the FloatingPointError that stopped it.

    Raises
    ------
    ValueError
        If the nets cannot train stacked (K > 1): :func:`stacked_reason`.
    """
    reason = stacking_reason(settings) if len(nets) > 1 else None
    reason = reason or stacked_reason(
        nets, X[0] if own_data else X, settings[0].penalty_step
    )
    if reason is not None and len(nets) > 1:
        raise ValueError(f"the nets cannot train stacked: {reason}")
    shared = settings[0]
    # Each net's own chunk, for its callbacks and checks.
    chunks = list(zip(X, y, strict=True)) if own_data else [(X, y)] * len(nets)
    for net, own, (X_k, y_k) in zip(nets, settings, chunks, strict=True):
        net.output_mask_ = shared.output_mask
        net.set_step_sizes(own.lr, own.momentum)
        net.notify("on_train_begin", X=X_k, y=y_k)
    if reason is None:
        shared_rows = len(generators) == 1 and not own_data
        backend = _StackedBackend(nets, shared, shared_rows, X[0] if own_data else X)
    else:
        backend = _ModuleBackend(nets[0], shared)
    errors = list(backend.errors)
    orders = _Orders(generators, X.shape[int(own_data)], X.device)
    online = _Online(nets)
    for _ in range(shared.epochs):
        if all(e is not None for e in errors):
            break
        for net in nets:
            net.notify("on_epoch_begin", dataset_train=None, dataset_valid=None)
        epoch = _train_epoch(backend, X, y, orders.draw(), shared, own_data, online)
        online.record()
        backend.write_parameters()
        for k, net in enumerate(nets):
            if errors[k] is None:
                errors[k] = _caught(
                    net.end_epoch, *(v[k].item() for v in epoch), backend.hooks[k]
                )
    backend.finish()
    for k, (net, (X_k, y_k)) in enumerate(zip(nets, chunks, strict=True)):
        if errors[k] is None:
            errors[k] = _caught(net._check_finite_outputs, X_k[: shared.batch_size])
        if errors[k] is None:
            net.notify("on_train_end", X=X_k, y=y_k)
    return errors


def _train_epoch(backend, X, y, order, settings, own_data, online):
    """Train one epoch; return each net's mean task loss, mean extra terms and
    first extra term that was not finite at a step whose task loss was (0
    where none was: the plug-ins' own divergence, told from the network's).
    Each step's online scores go to ``online`` (:class:`_Online`)."""
    notify = backend.notify
    callbacks = backend.callbacks
    losses, terms = [], []
    batches = _Batches(
        X, y, order, settings.batch_size, reuse=not callbacks, own_data=own_data
    )
    for Xb, yb in batches:
        step = Step(Xb, yb, settings.output_mask)
        if callbacks:
            backend.net.notify("on_batch_begin", batch=(Xb, yb), training=True)
        notify("before_forward", step)
        extra = backend.backward(step)
        if online.callbacks:
            online.add(backend.incoming_logits(step), step.y, settings.output_mask)
        notify("after_backward", step)
        if callbacks:
            backend.net.notify(
                "on_grad_computed",
                named_parameters=list(backend.net.module_.named_parameters()),
                batch=(Xb, yb),
                training=True,
            )
        backend.optimizer_step()
        notify("after_step", step)
        if callbacks:
            backend.net.notify(
                "on_batch_end",
                batch=(Xb, yb),
                training=True,
                loss=step.loss,
                y_pred=mask_outputs(step.logits, step.output_mask),
            )
        losses.append(step.loss.detach().reshape(-1))
        if extra is not None:  # with the task loss of its step
            terms.append((extra.detach().reshape(-1), losses[-1]))
    losses = torch.stack(losses)
    loss = losses.mean(0)
    if not terms:
        return loss, torch.zeros_like(loss), torch.zeros_like(loss)
    terms, term_losses = (torch.stack(t) for t in zip(*terms, strict=True))
    own = ~torch.isfinite(terms) & torch.isfinite(term_losses)
    first = terms.gather(0, own.to(torch.uint8).argmax(0, keepdim=True))[0]
    return loss, terms.mean(0), torch.where(own.any(0), first, 0.0)


class _ModuleBackend:
    """K = 1 on the net's module and optimizer, with plain autograd.

    Any module, optimizer, plug-in and callback; the quadratic penalties
    step implicitly (:class:`ImplicitQuadraticStep`) or add their gradient.
    """

    def __init__(self, net, settings):
        self.net = net
        hooks = Hooks(net.plugins_)
        self.hooks = [hooks]
        self.errors = [None]
        self.callbacks = any(
            _overrides(cb, Callback, name)
            for _, cb in net.callbacks_
            for name in _BATCH_CALLBACKS
        )
        self.params = [p for p in net.module_.parameters() if p.requires_grad]
        self.implicit = None
        if settings.penalty_step == "implicit":
            self.implicit = net._implicit_step(hooks)
        self.explicit = hooks.quadratic if self.implicit is None else []
        self.workspace = [torch.empty_like(p) for p in self.params if self.explicit]
        self.plugins = hooks
        net.module_.train()

    def notify(self, name, step):
        for hook in self.plugins[name]:
            hook(self.net, step)

    def backward(self, step):
        net, hooks = self.net, self.plugins
        net.optimizer_.zero_grad(set_to_none=True)
        step.logits = net.module_(step.inputs)
        loss = hooks.task_loss(net, step)
        if loss is None:
            y_pred = mask_outputs(step.logits, step.output_mask)
            loss = net.criterion_(y_pred, step.targets)
        step.loss = loss
        extra = hooks.loss(net, step)
        task_gradient = hooks["after_task_backward"]
        if extra is None or not task_gradient:
            (loss if extra is None else loss + extra).backward()
            self.notify("after_task_backward", step)
        else:
            # The terms may read the graph of the task loss (LwF the logits).
            loss.backward(retain_graph=True)
            self.notify("after_task_backward", step)
            extra.backward()
        if hooks.quadratic:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        for penalty in self.explicit:
            penalty.add_gradient(net, self.params, self.workspace)
        return extra

    def incoming_logits(self, step):
        """The step's logits of its incoming rows, ``(1, n, outputs)``."""
        return step.logits[None, : len(step.X)]

    def optimizer_step(self):
        if self.implicit is not None:
            self.implicit.before_step()
        self.net.optimizer_.step()
        if self.implicit is not None:
            self.implicit.apply()

    def write_parameters(self):
        """The module is trained in place."""

    def finish(self):
        """The optimizer and plug-ins hold their state."""


class _StackedBackend:
    """Every net's parameters as one ``(K, P)`` tensor, stepped at once."""

    def __init__(self, nets, settings, shared_rows, X):
        self.nets = nets
        self.shared_rows = shared_rows
        self.net = nets[0]
        self.callbacks = False
        self.hooks = [Hooks(net.plugins_) for net in nets]
        generators = [net.generator_ for net in nets]
        alike = all(g is generators[0] for g in generators)
        network = StackedNetwork(
            [net.module_ for net in nets],
            generators[:1] if alike else generators,
            X.dim() - 1,
        )
        quadratic, self.errors = None, [None] * len(nets)
        if any(h.quadratic for h in self.hooks):
            forms = [
                net.quadratic_forms(h) for net, h in zip(nets, self.hooks, strict=True)
            ]
            quadratic, self.errors = StackedQuadratic.of(network, forms)
        self.optimizer = StackedOptimizer(
            [net.optimizer_ for net in nets],
            network.flat,
            network.stack,
            lambda stacked: network.unstack(network.split(stacked)),
            None if quadratic is None else (quadratic.precision, quadratic.centre),
            implicit=settings.penalty_step == "implicit",
        )
        self.network = network
        self.plugins = StackedPlugins(nets, network, shared_rows)
        self.candidates = CandidateHooks(nets, network, shared_rows, self.optimizer)
        if self.candidates.names and _draws_random(nets[0].module_, X):
            # Hooks that run the module draw its dropout masks globally.
            self.candidates.global_draws = True
        criterion = copy.copy(nets[0].criterion_)
        criterion.reduction = "none"
        self.criterion = criterion
        self.hand = None if "loss" in self.candidates else by_hand(network, criterion)
        self.params = [p for p in network.params if p.requires_grad]
        # The hand-written pass writes the gradients into the optimizer's layout.
        self.flat_grad = torch.empty_like(network.flat)
        self.grad_views = network.split(self.flat_grad)
        self.grads = None

    def notify(self, name, step):
        self.plugins.notify(name, step)
        if name == "before_forward":
            self.candidates.open(step)
        self.candidates.notify(name, self.grads if name != "after_step" else None)
        if name == "before_forward":
            merged = name in self.candidates and self.candidates.merge(step)
            self.rows_shared = self.shared_rows and not merged

    def backward(self, step):
        """Each copy's task loss ``(K,)`` into ``step.loss``; gradients kept.

        Returns the copies' loss terms ``(K,)``, or None for none.
        """
        network, K, shared = self.network, self.network.size, self.rows_shared
        Xb, yb, mask = step.inputs, step.targets, step.output_mask
        candidates = self.candidates
        terms = None
        if self.hand is None:
            for p in self.params:
                p.grad = None
            step.logits = logits = network(Xb, shared)
            targets = yb.expand(K, *yb.shape) if shared else yb
            per_sample = self.criterion(
                mask_outputs(logits, mask).flatten(0, 1), targets.flatten(0, 1)
            )
            # The sum of the copies' mean losses: each copy's gradient is its own.
            task = per_sample.sum() * (K / per_sample.numel())
            step.loss = per_sample.detach().view(K, -1).mean(1)
            candidates.stacked(step)
            terms = candidates.loss()
            if terms is None or not self._reads_task_gradient():
                (task if terms is None else task + terms.sum()).backward()
                self._set_gradients()
                self.notify("after_task_backward", step)
            else:
                # The terms read the task loss's graph (LwF the logits).
                task.backward(retain_graph=True)
                self._set_gradients()
                self.notify("after_task_backward", step)
                terms.sum().backward()
        else:
            self.grads = self.grad_views
            with torch.no_grad():
                step.loss, step.logits = self.hand(Xb, yb, shared, mask, self.grads)
            if self.plugins.stacks or candidates.names:  # they read .grad
                for p, g in zip(self.params, self.grads, strict=True):
                    p.grad = g
            candidates.stacked(step)
            self.notify("after_task_backward", step)
        return None if terms is None else terms.detach()

    def incoming_logits(self, step):
        """The step's logits of its incoming rows, ``(K, n, outputs)``."""
        return step.logits[:, : step.X.shape[0 if self.shared_rows else 1]]

    def _reads_task_gradient(self):
        return bool(
            self.plugins.hooks("after_task_backward")
            or "after_task_backward" in self.candidates
        )

    def _set_gradients(self):
        """The gradients of the autograd pass, zeros where a parameter has none."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.grads = [p.grad for p in self.params]

    def optimizer_step(self):
        if self.hand is not None:
            self.optimizer.step(self.flat_grad)
            return
        K = self.network.size
        self.optimizer.step(torch.cat([g.reshape(K, -1) for g in self.grads], dim=1))

    def write_parameters(self):
        self.network.copy_to([net.module_ for net in self.nets])

    def finish(self):
        self.optimizer.write_back()
        self.plugins.write_back()


def stacked_reason(nets, X, penalty_step):
    """Why ``nets`` cannot train on the stacked backend, or None.

    Checked for every stack; at K = 1 a reason means the module backend.
    """
    K = len(nets)
    for net in nets:
        reason = plugins_reason(net.plugins_)
        if reason is not None:
            return reason
        callbacks = [
            name
            for _, cb in net.callbacks_
            for name in _BATCH_CALLBACKS
            if _overrides(cb, Callback, name)
        ]
        if callbacks:
            return f"its callbacks act at every batch ({', '.join(callbacks)})"
        hooks = Hooks(net.plugins_)
        if hooks["after_backward"] and hooks.quadratic and penalty_step == "explicit":
            return (
                "its penalties' explicit gradient must reach the after_backward "
                "hooks, which a stack runs before it"
            )
        criterion = net.criterion_
        if type(criterion) not in (nn.CrossEntropyLoss, nn.MSELoss) or (
            criterion.reduction != "mean"
            or getattr(criterion, "weight", None) is not None
        ):
            return "its criterion is not an unweighted mean cross-entropy or MSE"
    reason = stacked_optimizer_reason([net.optimizer_ for net in nets])
    if reason is not None:
        return reason
    module = nets[0].module_
    if K == 1:
        # Alone, only the batched kernels beat the module's own autograd, and
        # per-candidate hooks run faster on the module itself.
        if _batched_plan(module, X.dim() - 1) is None:
            return "its module has no batched kernels (MLPs and nn.Sequential)"
        if any(runs_per_candidate(p, True) for p in nets[0].plugins_):
            return "its plug-ins' per-candidate hooks run on the module itself"
    if X.device.type != "cpu" and _draws_random(module, X):
        return (
            "its module draws random numbers (dropout) on a GPU, whose fused "
            "kernels the stacked path does not reproduce"
        )
    return None


def plugins_reason(plugins):
    """Why ``plugins`` cannot train stacked (a per-step hook), or None."""
    for plugin in plugins:
        hooks = unstacked_hooks(plugin)
        if hooks:
            return (
                f"its plug-in {type(plugin).__name__} acts at every step "
                f"({', '.join(hooks)}) in hooks that do not stack"
            )
    return None


@contextlib.contextmanager
def chunk_generators(nets, seeds, X, penalty_step):
    """Give each net its chunk's generator (``generator_``), seeded with its seed.

    Nets seeded alike share one generator object. Where their module draws
    from torch's global generator by itself (:func:`draws_globally`), the
    chunk runs inside :func:`drawing_globally` and the shared generator is
    the forked global one: the module's draws and the plug-ins' come from
    one stream in program order, as in any other chunk. Yields the
    generators.
    """
    with contextlib.ExitStack() as stack:
        if len(set(seeds)) == 1:
            generator = torch.Generator().manual_seed(seeds[0])
            if draws_globally(nets, X, penalty_step):
                stack.enter_context(drawing_globally(generator, X.device))
                generator = torch.default_generator
            generators = [generator] * len(nets)
        else:
            generators = [torch.Generator().manual_seed(s) for s in seeds]
        for net, generator in zip(nets, generators, strict=True):
            stack.enter_context(net.drawing_from(generator))
        yield generators


def draws_globally(nets, X, penalty_step):
    """Whether training ``nets`` on ``X`` runs a module that draws from torch's
    global generator by itself: random layers (dropout, a ``torch.rand`` in
    ``forward``) outside the batched kernels, which draw from the nets' own
    generators."""
    module = nets[0].module_
    if (
        _batched_plan(module, X.dim() - 1) is not None
        and stacked_reason(nets, X, penalty_step) is None
    ):
        return False
    return _draws_random(module, X)


def _draws_random(module, X):
    """Whether a training forward pass of ``module`` draws random numbers.

    It runs on a copy (a forward pass in training mode updates buffers such
    as batch normalization's statistics) and draws from a probe generator:
    torch's global generators are left as they were.
    """
    module = copy.deepcopy(module).train()
    probe = torch.Generator()
    start = probe.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    drew = False
    with drawing_globally(probe), torch.no_grad():
        try:
            module(X[:2])
            drew = cuda is not None and any(
                not torch.equal(a, b)
                for a, b in zip(cuda, torch.cuda.get_rng_state_all(), strict=True)
            )
        finally:
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
    return drew or not torch.equal(start, probe.get_state())


def _overrides(obj, base, name):
    return getattr(type(obj), name) is not getattr(base, name)


def _caught(method, *args):
    try:
        method(*args)
    except FloatingPointError as error:
        return error
    return None


class _Online:
    """The online (prequential) scores of each net's steps, for the
    :class:`~skcl.callbacks.PrequentialScore` callbacks that record them.

    A step's score is that of its own forward pass, before its update, on
    the incoming rows (the mini-batch, not rows a plug-in added), with the
    task's outputs: a classifier's accuracy (argmax), a regressor's mean
    squared error. One implementation for both backends and any stack.
    """

    def __init__(self, nets):
        self.callbacks = [
            [cb for _, cb in net.callbacks_ if isinstance(cb, PrequentialScore)]
            for net in nets
        ]
        if not any(self.callbacks):
            self.callbacks = []
        self.tasks = [net.task_index_ for net in nets]
        self.classifier = isinstance(nets[0], NeuralNetClassifier)
        self.steps = []

    @torch.no_grad()
    def add(self, logits, y, mask):
        """Score one step: ``logits`` ``(K, n, outputs)``, ``y`` one set of
        targets for every net or one per net."""
        outputs = mask_outputs(logits, mask)
        if self.classifier:
            score = (outputs.argmax(-1) == y).sum(-1)  # counts: exact in float64
        else:
            score = (outputs - y).square().flatten(1).mean(1)
        self.steps.append((score, logits.shape[1]))

    def record(self):
        """Append the scores of the steps so far to each net's callbacks."""
        if not self.steps:
            return
        scores = torch.stack([s for s, _ in self.steps]).double()
        if self.classifier:
            scores /= torch.tensor([n for _, n in self.steps], dtype=torch.double)[
                :, None
            ]
        for k, (callbacks, values) in enumerate(
            zip(self.callbacks, scores.T.tolist(), strict=True)
        ):
            for callback in callbacks:
                callback.scores_.extend(values)
                callback.training_task_.extend([self.tasks[k]] * len(values))
        self.steps = []


class _Orders:
    """Each epoch's batch order: one shared ``(n,)`` or one per copy ``(K, n)``."""

    def __init__(self, generators, n, device):
        self.generators, self.n, self.device = generators, n, device

    def draw(self):
        orders = [torch.randperm(self.n, generator=g) for g in self.generators]
        return (orders[0] if len(orders) == 1 else torch.stack(orders)).to(self.device)


class _Batches:
    """The mini-batches of ``X``, ``y`` in ``order`` (``(n,)`` or ``(K, n)``).

    Gathering each batch (into one reused buffer with ``reuse``) costs a
    fraction of copying the whole shuffled chunk once per epoch. With
    ``own_data``, ``X`` and ``y`` hold one chunk per copy, ``(K, n, ...)``.
    """

    def __init__(self, X, y, order, batch_size, *, reuse, own_data=False):
        self.offsets = None
        if own_data:  # the copies' chunks end to end, each copy's rows offset
            K, n = X.shape[:2]
            self.offsets = torch.arange(K, device=X.device).view(-1, 1) * n
            X, y = X.flatten(0, 1), y.flatten(0, 1)
        self.X, self.y, self.order, self.batch_size = X, y, order, batch_size
        rows = self._rows(0).numel()
        self.buffers = (
            (X.new_empty((rows, *X.shape[1:])), y.new_empty((rows, *y.shape[1:])))
            if reuse
            else None
        )

    def _rows(self, start):
        rows = self.order[..., start : start + self.batch_size]
        return rows if self.offsets is None else rows + self.offsets

    def __iter__(self):
        n = self.order.shape[-1]
        for start in range(0, n, self.batch_size):
            rows = self._rows(start)
            if self.buffers is None:
                yield self.X[rows], self.y[rows]
                continue
            flat = rows.reshape(-1)
            Xb, yb = (b[: len(flat)] for b in self.buffers)
            torch.index_select(self.X, 0, flat, out=Xb)
            torch.index_select(self.y, 0, flat, out=yb)
            yield (
                Xb.view(*rows.shape, *self.X.shape[1:]),
                yb.view(*rows.shape, *self.y.shape[1:]),
            )


def _trainable(net):
    return [p for p in net.module_.parameters() if p.requires_grad]


class StackedPlugins:
    """The plug-ins with per-step hooks, each stacked over the copies.

    Their hooks see a net whose module holds the stacked parameters
    (``(K, ...)`` each; see :class:`skcl.Plugin`) and a plug-in whose state
    is stacked for the chunk: lists of parameter-shaped tensors parameter by
    parameter, other tensors along a new first dimension; any other value
    (a replay memory) must be equal in every copy and is shared by the
    stack, which needs copies that draw the same batches (``shared_rows``).
    Written back to each copy afterwards.

    Raises
    ------
    ValueError
        If a plug-in's state cannot be stacked (:func:`plugins_state_reason`).
    """

    def __init__(self, nets, network, shared_rows):
        self.network = network
        self.view = _StackedNet(nets, network)
        self.stacks = []
        for plugins, names in _stacked_state(nets, shared_rows):
            stacked = copy.copy(plugins[0])
            for name, kind in names:
                values = [getattr(p, name) for p in plugins]
                if kind == "parameters":
                    value = network.stack_parameterwise(values)
                elif kind == "tensor":
                    value = torch.stack(values)
                else:
                    value = copy.deepcopy(values[0])
                setattr(stacked, name, value)
            self.stacks.append((stacked, plugins, names))
        hooks = Hooks([stacked for stacked, _, _ in self.stacks])
        self._hooks = {name: hooks[name] for name in hooks.stepping()}

    def hooks(self, name):
        return self._hooks.get(name, ())

    def notify(self, name, step):
        for hook in self._hooks.get(name, ()):
            hook(self.view, step)

    def write_back(self):
        for stacked, plugins, names in self.stacks:
            for name, kind in names:
                value = getattr(stacked, name)
                if kind == "parameters":
                    copies = self.network.unstack(value)
                    for plugin, tensors in zip(plugins, copies, strict=True):
                        setattr(plugin, name, [t.contiguous().clone() for t in tensors])
                elif kind == "tensor":
                    for plugin, tensor in zip(plugins, value, strict=True):
                        setattr(plugin, name, tensor.clone())
                else:
                    for plugin in plugins:
                        setattr(plugin, name, copy.deepcopy(value))


def plugins_state_reason(nets, shared_rows):
    """Why the per-step plug-ins' state of ``nets`` cannot stack, or None."""
    try:
        _stacked_state(nets, shared_rows)
    except ValueError as error:
        return str(error)
    return None


def _stacked_state(nets, shared_rows):
    """Per per-step plug-in: its copies and how each state attribute stacks."""
    shapes = [p.shape for p in _trainable(nets[0])]
    per_net = [
        [
            p
            for p in net.plugins_
            if Hooks([p]).stepping() and not runs_per_candidate(p, shared_rows)
        ]
        for net in nets
    ]
    plan = []
    for plugins in zip(*per_net, strict=True):
        names = []
        for name in state_names(plugins[0]):
            value = getattr(plugins[0], name)
            values = [getattr(p, name) for p in plugins]
            if _parameter_shaped(value, shapes):
                names.append((name, "parameters"))
            elif isinstance(value, torch.Tensor):
                names.append((name, "tensor"))
            else:
                owner = type(plugins[0]).__name__
                if any(not equal_values(v, value) for v in values[1:]):
                    raise ValueError(f"the candidates' {owner}.{name} differ")
                if not shared_rows and not isinstance(value, _PLAIN):
                    raise ValueError(
                        f"differently seeded candidates would share {owner}.{name}"
                    )
                names.append((name, "value"))
        plan.append((plugins, names))
    return plan


_PLAIN = (type(None), bool, int, float, str)


def _parameter_shaped(value, shapes):
    return (
        isinstance(value, list)
        and len(value) == len(shapes)
        and all(
            isinstance(t, torch.Tensor) and t.shape == s
            for t, s in zip(value, shapes, strict=True)
        )
    )


class _StackedNet:
    """What a stackable plug-in's per-step hooks read: ``module_``'s stacked
    parameters, and the task, outputs and generator that every copy shares."""

    def __init__(self, nets, network):
        self.module_ = _StackedParameters(network)
        self.task_index_ = nets[0].task_index_
        self.output_mask_ = nets[0].output_mask_
        self._generators = [net.generator_ for net in nets]

    @property
    def generator_(self):
        """The copies' one generator (copies seeded alike share it)."""
        first = self._generators[0]
        if any(g is not first for g in self._generators):
            raise RuntimeError(
                "copies seeded apart draw from a generator each: a plug-in that "
                "draws random numbers runs its hooks per candidate "
                "(candidate_steps)"
            )
        return first


class _StackedParameters:
    def __init__(self, network):
        self.network = network

    def named_parameters(self):
        return iter(zip(self.network.names, self.network.params, strict=True))

    def parameters(self):
        return iter(self.network.params)
