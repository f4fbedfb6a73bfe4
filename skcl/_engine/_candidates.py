"""Per-step hooks run once per candidate of a stack, on that candidate's view."""

import functools

import torch
from torch.func import functional_call

from .._hooks import Hooks, runs_per_candidate
from .._plugin import Step
from ._random import drawing_globally, run_each


class CandidateHooks:
    """The hooks that plug-ins declare in ``candidate_steps``, run per candidate.

    Candidate ``k``'s own plug-ins see a net whose ``module_`` is that
    candidate's network (a function of its slice of the stack: a loss term
    backpropagates into the stack, and after the backward pass its
    parameters' ``.grad`` are views of the stacked gradients) and a
    :class:`Step` of its own rows, logits and loss. Random draws use the
    candidate's own generator (its net's ``generator_``), or the one that
    candidates seeded alike share: each candidate then draws from the state
    the first one started from, and must leave it in the same state. With
    ``global_draws`` (the module draws from torch's global generator by
    itself), each candidate's hooks run inside
    :func:`~skcl._engine._random.drawing_globally` of its generator, whose
    place the global one takes: the module's draws and the plug-in's come
    from one stream, as when the candidate trains alone.
    """

    global_draws = False

    def __init__(self, nets, network, shared_rows, optimizer):
        self.network, self.shared_rows = network, shared_rows
        self.generators = [net.generator_ for net in nets]
        self.per_net = [
            [p for p in net.plugins_ if runs_per_candidate(p, shared_rows)]
            for net in nets
        ]
        self.hooks = [Hooks(plugins) for plugins in self.per_net]
        names = {name for hooks in self.hooks for name in hooks.stepping()}
        self.names = names
        self.views = [
            _CandidateNet(net, network, k, optimizer) for k, net in enumerate(nets)
        ]
        self.steps = None

    def __contains__(self, name):
        return name in self.names

    def open(self, step):
        """Split ``step`` (the stack's) into each candidate's step."""
        self.steps = []
        if not self.names:  # nothing per candidate: no work in the step
            return
        for k in range(self.network.size):
            own = Step(*(self._row(t, k) for t in (step.X, step.y)), step.output_mask)
            own.inputs, own.targets = (
                self._row(t, k) for t in (step.inputs, step.targets)
            )
            self.steps.append(own)

    def merge(self, step):
        """Take the rows that the candidates' ``before_forward`` chose into the
        stack's ``step``; return whether they now differ per candidate."""
        own = self.steps
        fields = ("inputs", "targets", "output_mask")
        if all(getattr(s, f) is getattr(own[0], f) for s in own for f in fields):
            return False
        try:
            step.inputs = torch.stack([s.inputs for s in own])
            step.targets = torch.stack([s.targets for s in own])
        except RuntimeError as error:
            raise ValueError(
                "the candidates' plug-ins chose different numbers of rows"
            ) from error
        masks = [s.output_mask for s in own]
        if any(m is not None for m in masks):
            n = step.inputs.shape[1]
            width = next(m for m in masks if m is not None).shape[-1]
            step.output_mask = torch.stack(
                [
                    torch.ones(n, width, dtype=torch.bool, device=step.inputs.device)
                    if m is None
                    else m.expand(n, width)
                    for m in masks
                ]
            )
        return True

    def stacked(self, step):
        """Give each candidate's step its logits and task loss."""
        for k, own in enumerate(self.steps):
            own.logits = None if step.logits is None else step.logits[k]
            own.loss = step.loss[k]

    def _row(self, tensor, k):
        return tensor if self.shared_rows else tensor[k]

    def loss(self):
        """Each candidate's sum of loss terms ``(K,)``, or None if there is none."""
        if "loss" not in self.names:
            return None

        def term(k):
            self.views[k].module_.forget()
            return self.hooks[k].loss(self.views[k], self.steps[k])

        terms = self._each(term)
        if all(term is None for term in terms):
            return None
        zero = self.network.flat.new_zeros(())
        return torch.stack([zero if t is None else t for t in terms])

    def notify(self, name, grads=None):
        """Run hook ``name`` of each candidate's plug-ins.

        With ``grads`` (the stacked gradients), the candidates' parameters
        carry views of them as ``.grad``.
        """
        if name not in self.names:
            return

        def run(k):
            self.views[k].module_.refresh(grads)
            for hook in self.hooks[k][name]:
                hook(self.views[k], self.steps[k])

        self._each(run)

    def _each(self, call):
        """``call(k)`` for each candidate ``k``; candidates seeded alike each
        from the state of their shared generator that the first started from."""
        calls = [
            functools.partial(self._drawing, call, k) for k in range(len(self.views))
        ]
        return run_each(self.generators, calls)

    def _drawing(self, call, k):
        if not self.global_draws:
            return call(k)
        view = self.views[k]
        generator = view.generator_
        with drawing_globally(generator):
            view.generator_ = torch.default_generator
            try:
                return call(k)
            finally:
                view.generator_ = generator


class _CandidateNet:
    """What candidate ``k``'s plug-ins see of its net during a stacked step."""

    def __init__(self, net, network, k, optimizer):
        self.module_ = _CandidateModule(net.module_, network, k)
        self._optimizer, self._k = optimizer, k
        self.generator_ = net.generator_
        self.criterion_ = net.criterion_
        self.task_index_ = net.task_index_
        self.output_mask_ = net.output_mask_
        self.classes = getattr(net, "classes", None)

    def reset_optimizer_state(self, masks):
        """The candidate's optimizer state, as the net's own method resets it."""
        self._optimizer.reset_state(self._k, masks)


class _CandidateModule:
    """Candidate ``k``'s network as a function of its slice of the stack.

    While loss terms are computed, calling it runs the module on the
    candidate's slice, graph connected to the stack (a term backpropagates
    into it). In the other hooks (after :meth:`refresh`), ``parameters()``
    yields leaves sharing the slice's storage, with views of the stacked
    gradients as ``.grad``, and calling it runs the module on those leaves;
    they are made when first read (a hook that reads nothing costs nothing).
    """

    def __init__(self, module, network, k):
        self.module, self.network, self.k = module, network, k
        self.names = [name for name, _ in module.named_parameters()]
        self.buffer_names = [name for name, _ in module.named_buffers()]
        self._leaves, self._grads, self._stale = None, None, False

    def _own(self, stacked):
        """Candidate ``k``'s tensors, in the module's layout, of per-parameter
        stacks (the trainable ones in the stacked layout)."""
        own, trainable = [], 0
        for p, t in zip(self.network.params, stacked, strict=True):
            if p.requires_grad:
                own.append(self.network._stacked(trainable, t[self.k]))
                trainable += 1
            else:
                own.append(t[self.k])
        return own

    def __call__(self, X):
        leaves = self.leaves
        params = self._own(self.network.params) if leaves is None else leaves
        buffers = [b[self.k] for b in self.network.buffers]
        names = [*self.names, *self.buffer_names]
        state = dict(zip(names, [*params, *buffers], strict=True))
        return functional_call(self.module, state, (X,))

    def refresh(self, grads):
        """Leaves on the current slice, with views of ``grads`` as ``.grad``."""
        self._grads, self._stale = grads, True

    @property
    def leaves(self):
        """The leaves of the last :meth:`refresh` (None after :meth:`forget`)."""
        if self._stale:
            self._stale = False
            self._make_leaves(self._grads)
        return self._leaves

    def _make_leaves(self, grads):
        own = self._own(self.network.params)
        self._leaves = [
            t.detach().requires_grad_(p.requires_grad)
            for t, p in zip(own, self.network.params, strict=True)
        ]
        if grads is None:
            return
        grads = iter(grads)
        stacked = [next(grads) if p.requires_grad else p for p in self.network.params]
        for leaf, p, g in zip(
            self._leaves, self.network.params, self._own(stacked), strict=True
        ):
            if p.requires_grad:
                leaf.grad = g

    def forget(self):
        """Back to the graph-connected slice (for loss terms)."""
        self._leaves, self._stale = None, False

    def parameters(self):
        return iter(self.leaves)

    def named_parameters(self):
        return iter(zip(self.names, self.leaves, strict=True))
