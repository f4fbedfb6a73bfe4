"""``torch.optim`` optimizers of K candidates, stepped as one ``(K, P)`` tensor.

Each candidate keeps its own hyper-parameters (``(K, 1)`` columns) and its
own state; one step is one set of elementwise operations on the ``(K, P)``
tensors, equal to what its ``torch.optim`` optimizer (CPU, single-tensor
path) does for each candidate alone, and ends, if asked, with the implicit
quadratic step of :class:`~skcl.penalties._implicit.ImplicitQuadraticStep`.
"""

import abc
import math

import torch
from torch.optim import SGD, Adagrad, Adam, AdamW, RMSprop

# Elements of one column block of the (K, P) tensors: 256 KiB of float32.
_BLOCK_ELEMENTS = 65536

# Flags that change the algorithm: one value for every candidate.
_FLAGS = {
    SGD: ("nesterov",),
    Adam: ("amsgrad", "decoupled_weight_decay"),
    AdamW: ("amsgrad",),
    RMSprop: ("centered",),
    Adagrad: (),
}

STACKED_OPTIMIZERS = tuple(_FLAGS)

# Options whose true values change what a step computes or where its state lives.
_REFUSED_OPTIONS = ("maximize", "fused", "capturable", "differentiable")


def stacked_optimizer_reason(optimizers):
    """Why ``optimizers`` (one per candidate) cannot step stacked, or None.

    Parameters
    ----------
    optimizers : list of torch.optim.Optimizer
        Each candidate's optimizer, over its trainable parameters in module order.

    Returns
    -------
    str or None
        A short reason, such as ``"its optimizer is LBFGS"``, or None.
    """
    kind = type(optimizers[0])
    for optimizer in optimizers:
        reason = _own_reason(optimizer, kind)
        if reason is not None:
            return reason
    groups = [optimizer.param_groups[0] for optimizer in optimizers]
    for flag in _FLAGS[kind]:
        if len({bool(group[flag]) for group in groups}) > 1:
            return f"their {kind.__name__} differs in {flag}"
    if len({tuple(p.shape for p in _params(o)) for o in optimizers}) > 1:
        return "their optimizers' parameters differ in shape"
    return None


def _own_reason(optimizer, kind):
    """Why ``optimizer`` cannot step stacked beside one of class ``kind``, or None."""
    name = type(optimizer).__name__
    if type(optimizer) not in _FLAGS:
        return f"its optimizer is {name}"
    if type(optimizer) is not kind:
        return f"their optimizers differ: {kind.__name__} and {name}"
    if len(optimizer.param_groups) != 1:
        return f"its {name} has {len(optimizer.param_groups)} parameter groups"
    group = optimizer.param_groups[0]
    options = [option for option in _REFUSED_OPTIONS if group.get(option)]
    if options:
        return f"its {name} sets {', '.join(options)}"
    if any(p.is_complex() for p in _params(optimizer)):
        return f"its {name} steps complex parameters"
    return _state_reason(optimizer)


def _state_reason(optimizer):
    """Why ``optimizer``'s state is not one state for all its parameters, or None."""
    name = type(optimizer).__name__
    states = [optimizer.state.get(p, {}) for p in _params(optimizer)]
    if len({frozenset(state) for state in states}) > 1:
        return f"its {name} has state for only some parameters"
    if len({float(state["step"]) for state in states if "step" in state}) > 1:
        return f"its {name}'s parameters are at different steps"
    if states and states[0]:
        needed = _ALGORITHMS[type(optimizer)].needed(optimizer.param_groups[0])
        missing = [key for key in needed if key not in states[0]]
        if missing:
            return f"its {name}'s state lacks {', '.join(missing)}"
    return None


def fresh_state(group, name):
    """The value of state ``name`` of a parameter that has not stepped:
    Adagrad's ``initial_accumulator_value`` for its sum, 0 otherwise."""
    return float(group.get("initial_accumulator_value", 0.0)) if name == "sum" else 0.0


@torch.no_grad()
def reset_state(optimizer, params, masks):
    """Set ``optimizer``'s per-entry state of ``params`` to its fresh value where
    ``masks`` (one boolean tensor per parameter, None for none) are true.

    The per-entry state is every tensor of a parameter's shape (momentum,
    moments, sums); ``step`` counts are per tensor in ``torch.optim`` and
    stay as they are.
    """
    group = optimizer.param_groups[0]
    for p, mask in zip(params, masks, strict=True):
        for name, value in optimizer.state.get(p, {}).items():
            if mask is not None and torch.is_tensor(value) and value.shape == p.shape:
                value.masked_fill_(mask, fresh_state(group, name))


def _params(optimizer):
    """The parameters that ``optimizer`` steps (frozen ones never get gradients)."""
    return [p for p in optimizer.param_groups[0]["params"] if p.requires_grad]


def _scalar_dtype():
    """The dtype of the ``step`` counts that ``torch.optim`` creates."""
    return (
        torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    )


class StackedOptimizer(abc.ABC):
    """The ``torch.optim`` optimizers of K candidates, stepping one ``(K, P)`` tensor.

    Constructing one returns the subclass for the optimizers' class (SGD,
    Adam, AdamW, RMSprop or Adagrad). Each candidate steps with its own
    hyper-parameters and state, read from its optimizer, which is left
    alone until :meth:`write_back`. A candidate's quadratic penalty (zero
    precision for none) is added to its gradient (``implicit=False``) or
    applied after the step as ``ImplicitQuadraticStep`` applies it
    (``implicit=True``; SGD's momentum buffer gets the penalty's gradient at
    the new point added, ``(theta - theta') / lr`` without its cancellation).
    A large stack steps in column blocks that fit the caches, each block's
    tensors read once per step. Every parameter steps, as if each had a
    gradient (torch skips those whose ``.grad`` is None).

    Parameters
    ----------
    optimizers : list of torch.optim.Optimizer
        Each candidate's optimizer, over its trainable parameters in module
        order; :func:`stacked_optimizer_reason` must accept them.
    flat : Tensor
        The ``(K, P)`` stacked trainable parameters, updated in place.
    stack : callable
        ``stack(copies)``: one ``(K, P)`` tensor of the candidates' lists of
        module-layout tensors.
    unstack_flat : callable
        ``unstack_flat(stacked)``: each candidate's list of module-layout
        tensors of a ``(K, P)`` tensor.
    quadratic : tuple of Tensor or None
        ``(precision, centre)``, each ``(K, P)``: each candidate's folded
        quadratic penalties.
    implicit : bool
        Whether the quadratic is applied implicitly, after the step.

    Raises
    ------
    ValueError
        If the optimizers cannot step stacked, or do not step ``flat``'s columns.
    """

    # Whether the state counts steps; the device of a new count (None: default).
    _counts_steps = True
    _step_device = None

    def __new__(cls, optimizers, *args, **kwargs):
        if cls is StackedOptimizer:
            reason = stacked_optimizer_reason(optimizers)
            if reason is not None:
                raise ValueError(f"the optimizers cannot step stacked: {reason}")
            cls = _ALGORITHMS[type(optimizers[0])]
        return super().__new__(cls)

    def __init__(
        self, optimizers, flat, stack, unstack_flat, quadratic=None, implicit=False
    ):
        params = [_params(optimizer) for optimizer in optimizers]
        size = sum(p.numel() for p in params[0])
        if (len(params), size) != tuple(flat.shape):
            raise ValueError(
                f"{len(params)} optimizers of {size} elements each do not step "
                f"the stacked parameters of shape {tuple(flat.shape)}."
            )
        self.optimizers, self.flat = optimizers, flat
        self._params, self._stack, self._unstack = params, stack, unstack_flat
        self.groups = [optimizer.param_groups[0] for optimizer in optimizers]
        states = [
            [o.state.get(p, {}) for p in ps]
            for o, ps in zip(optimizers, params, strict=True)
        ]
        self._has_state = [bool(own[0]) for own in states]
        self.steps = [float(own[0].get("step", 0.0)) for own in states]
        self.implicit = quadratic is not None and implicit
        self.explicit = quadratic is not None and not implicit
        self.tensors, self.state_names = {"param": flat}, []
        if quadratic is not None:
            self.tensors.update(precision=quadratic[0], centre=quadratic[1])
        self._setup(states)
        self._blocks()

    @classmethod
    def needed(cls, group):
        """The state of a parameter that has stepped under ``group``."""
        return ()

    @torch.no_grad()
    def reset_state(self, k, masks):
        """:func:`reset_state` for candidate ``k``, ``masks`` in module layout."""
        masks = [
            torch.zeros_like(p, dtype=torch.bool) if m is None else m
            for p, m in zip(self._params[k], masks, strict=True)
        ]
        flat = self._stack([masks])[0]
        for name in self.state_names:
            fill = fresh_state(self.groups[k], name)
            self.tensors[name][k].masked_fill_(flat, fill)

    @abc.abstractmethod
    def _setup(self, states):
        """Read every candidate's hyper-parameters and ``states``."""

    def _column(self, values):
        """``values`` (one per candidate) as a ``(K, 1)`` column of ``flat``'s type."""
        flat = self.flat
        return torch.tensor(values, dtype=flat.dtype, device=flat.device).view(-1, 1)

    def _hyper(self, name):
        """Each candidate's hyper-parameter ``name``, as floats."""
        return [float(group[name]) for group in self.groups]

    def _state(self, states, name, fills=None):
        """Stack the candidates' state ``name``: ``fills[k]`` (or 0) where none."""
        fills = [0.0] * len(states) if fills is None else fills
        copies = [
            [
                state[name] if name in state else torch.full_like(p, fill)
                for state, p in zip(own, params, strict=True)
            ]
            for own, params, fill in zip(states, self._params, fills, strict=True)
        ]
        self.tensors[name] = self._stack(copies).to(self.flat)
        self.state_names.append(name)

    def _blocks(self):
        """Views of every ``(K, P)`` tensor per column block, and workspaces."""
        K, P = self.flat.shape
        width = P if K * P <= _BLOCK_ELEMENTS else max(1, _BLOCK_ELEMENTS // K)
        work = [self.flat.new_empty(K, width) for _ in range(2)]
        self.blocks = []
        for lo in range(0, P, width):
            columns = slice(lo, min(lo + width, P))
            views = {name: t[:, columns] for name, t in self.tensors.items()}
            views["work"], views["work2"] = (w[:, : columns.stop - lo] for w in work)
            self.blocks.append((columns, views))

    @torch.no_grad()
    def step(self, grad):
        """Step every candidate with its task loss's gradient ``grad`` ``(K, P)``.

        ``grad`` may be overwritten.
        """
        self.steps = [step + 1 for step in self.steps]
        scalars = self._scalars()
        if len(self.blocks) == 1:
            self._step(self.blocks[0][1], grad, scalars)
        else:
            for columns, views in self.blocks:
                self._step(views, grad[:, columns], scalars)
        self._has_state = [True] * len(self.optimizers)

    def _scalars(self):
        """This step's per-candidate columns that depend on the step count."""
        return None

    @abc.abstractmethod
    def _step(self, b, g, scalars):
        """Step the block ``b`` (views by name) with its gradient ``g``."""

    def _add_penalty(self, b, g):
        """Add the quadratic's gradient ``W (theta - c)`` to ``g``."""
        offset = torch.sub(b["param"], b["centre"], out=b["work2"])
        g.addcmul_(b["precision"], offset)

    def _adaptive_implicit(self, b, inverse_eta, buffer=None, inverse_lr=None):
        """The implicit step at the step sizes ``eta``, given ``1 / eta``.

        ``theta' = theta - q (theta - c)``, ``q = W / (W + 1 / eta) = a / (1 + a)``
        (0 where ``W = 0``); ``buffer`` gets ``(theta - theta') * inverse_lr``.
        """
        precision, param = b["precision"], b["param"]
        offset = torch.sub(param, b["centre"], out=b["work2"])
        shrink = torch.div(precision, inverse_eta.add_(precision), out=inverse_eta)
        param.sub_(offset.mul_(shrink))
        if buffer is not None:
            buffer.addcmul_(offset, inverse_lr)

    @torch.no_grad()
    def write_back(self):
        """Write each candidate's state into its optimizer, as ``torch.optim`` would.

        New tensors in module layout replace the state's; a candidate with
        no state that has not stepped is left without.
        """
        written = {name: self._unstack(self.tensors[name]) for name in self.state_names}
        for k, optimizer in enumerate(self.optimizers):
            names = self._written(k)
            if not self._has_state[k] or not (names or self._counts_steps):
                continue
            for i, p in enumerate(self._params[k]):
                state = optimizer.state[p]
                if self._counts_steps:
                    state["step"] = self._step_tensor(state.get("step"), self.steps[k])
                for name in names:
                    value = torch.empty_like(p, memory_format=torch.preserve_format)
                    state[name] = value.copy_(written[name][k][i])

    def _written(self, k):
        """The state that candidate ``k``'s optimizer holds, in torch's order."""
        return self.state_names

    def _step_tensor(self, old, count):
        """The ``step`` count as ``torch.optim`` keeps it: like ``old``, if any."""
        if old is not None:
            return torch.tensor(count, dtype=old.dtype, device=old.device)
        return torch.tensor(count, dtype=_scalar_dtype(), device=self._step_device)


class _SGD(StackedOptimizer):
    """``torch.optim.SGD``: momentum, dampening, Nesterov, weight decay."""

    _counts_steps = False

    def _setup(self, states):
        self._lr = self._hyper("lr")
        self.lr = self._column(self._lr)
        self.nesterov = bool(self.groups[0]["nesterov"])
        decay = self._hyper("weight_decay")
        self.weight_decay = self._column(decay) if any(decay) else None
        self._momenta = self._hyper("momentum")
        self.momentum = any(self._momenta)
        self.momenta = self._column(self._momenta)
        if self.momentum:
            self._state(states, "momentum_buffer")
        self._regime(["momentum_buffer" not in own[0] for own in states])

    def _regime(self, fresh):
        """The columns of a step in which the ``fresh`` candidates start a buffer.

        Torch's first buffer is the gradient itself: not decayed nor dampened.
        """
        pairs = list(zip(fresh, self._momenta, self.groups, strict=True))
        self._fresh = any(f and m for f, m, _ in pairs)
        decay = [0.0 if f else m for f, m, _ in pairs]
        rho = [1.0 - float(g["dampening"]) if m and not f else 1.0 for f, m, g in pairs]
        self.decay, self.rho = self._column(decay), self._column(rho)
        if self.implicit:
            self._implicit_factors(rho)

    def _implicit_factors(self, rho):
        """``q = a / (1 + a)`` (``a = eta W``) and the buffer's ``rho q / eta``.

        ``eta = lr * kappa``, ``kappa = rho`` (``1 + momentum * rho`` with
        Nesterov, 1 without momentum), as in ImplicitQuadraticStep.
        """
        eta = [
            lr * (1.0 if not m else (1.0 + m * r if self.nesterov else r))
            for lr, m, r in zip(self._lr, self._momenta, rho, strict=True)
        ]
        precision = self.tensors["precision"]
        a = self._column(eta) * precision
        self.tensors["shrink"] = (1 + a.reciprocal()).reciprocal()
        # rho q / eta = rho W / (1 + a), finite also at lr = 0.
        self.tensors["buffer_shrink"] = precision * self._column(rho) / (1 + a)

    def _written(self, k):
        return self.state_names if self._momenta[k] else []

    @torch.no_grad()
    def step(self, grad):
        super().step(grad)
        if self._fresh:
            self._regime([False] * len(self.optimizers))
            if self.implicit:
                self._blocks()

    def _step(self, b, g, scalars):
        param = b["param"]
        if self.explicit:
            self._add_penalty(b, g)
        if self.weight_decay is not None:
            g.addcmul_(param, self.weight_decay)
        direction = g
        if self.momentum:
            buffer = b["momentum_buffer"].mul_(self.decay).addcmul_(g, self.rho)
            if self.nesterov:
                g.addcmul_(buffer, self.momenta)
            else:
                direction = buffer
        param.addcmul_(direction, self.lr, value=-1)
        if self.implicit:
            # theta' = lerp(theta_t, c, q); the buffer gets rho W (theta' - c),
            # the penalty's gradient at theta' (0 where W = 0).
            if self.momentum:
                offset = torch.sub(param, b["centre"], out=b["work2"])
                buffer.addcmul_(offset, b["buffer_shrink"])
            param.lerp_(b["centre"], b["shrink"])


class _Adam(StackedOptimizer):
    """``torch.optim.Adam`` and ``AdamW``: betas, eps, weight decay, AMSGrad."""

    _step_device = "cpu"

    @classmethod
    def needed(cls, group):
        amsgrad = ("max_exp_avg_sq",) if group["amsgrad"] else ()
        return ("step", "exp_avg", "exp_avg_sq", *amsgrad)

    def _setup(self, states):
        group = self.groups[0]
        self.amsgrad = bool(group["amsgrad"])
        self._lr = self._hyper("lr")
        self.lr = self._column(self._lr)
        self._betas = [tuple(float(b) for b in g["betas"]) for g in self.groups]
        self.one_minus_beta1 = self._column([1 - b1 for b1, _ in self._betas])
        self.beta2 = self._column([b2 for _, b2 in self._betas])
        self.square_weight = _shared([1 - b2 for _, b2 in self._betas], self)
        self.eps = self._column(self._hyper("eps"))
        self._spacing = _spacing(min(self._hyper("eps")), self.flat.dtype)
        decay = self._hyper("weight_decay")
        decoupled = type(self.optimizers[0]) is AdamW or group.get(
            "decoupled_weight_decay", False
        )
        self.weight_decay = self.shrink = None
        if any(decay) and decoupled:
            shrink = [1 - lr * d for lr, d in zip(self._lr, decay, strict=True)]
            self.shrink = self._column(shrink)
        elif any(decay):
            self.weight_decay = self._column(decay)
        for name in self.needed(group)[1:]:
            self._state(states, name)

    def _scalars(self):
        # Torch's bias corrections, in Python floats, at each candidate's count.
        size, root = [], []
        for lr, (beta1, beta2), step in zip(
            self._lr, self._betas, self.steps, strict=True
        ):
            size.append(-lr / (1 - beta1**step))
            root.append((1 - beta2**step) ** 0.5)
        self._floor = _root_floor(self._spacing, min(root), self.flat.dtype)
        # One step size for all: addcdiv's scalar, (value * m) / d as the
        # column's product then addcdiv round it, one pass fewer.
        self._size = size[0] if len(set(size)) == 1 else None
        return self._column(size + root).view(2, -1, 1)

    def _step(self, b, g, scalars):
        param, exp_avg, exp_avg_sq = b["param"], b["exp_avg"], b["exp_avg_sq"]
        if self.explicit:
            self._add_penalty(b, g)
        if self.shrink is not None:
            param.mul_(self.shrink)
        elif self.weight_decay is not None:
            g.addcmul_(param, self.weight_decay)
        exp_avg.lerp_(g, self.one_minus_beta1)
        _add_square(exp_avg_sq, g, self.beta2, self.square_weight, b["work"])
        if self.amsgrad:
            largest = b["max_exp_avg_sq"]
            exp_avg_sq = torch.maximum(largest, exp_avg_sq, out=largest)
        if self._floor:
            torch.clamp_min(exp_avg_sq, self._floor, out=b["work"]).sqrt_()
        else:
            torch.sqrt(exp_avg_sq, out=b["work"])
        denominator = b["work"].div_(scalars[1]).add_(self.eps)
        if self._size is not None:
            param.addcdiv_(exp_avg, denominator, value=self._size)
        else:
            param.addcdiv_(torch.mul(exp_avg, scalars[0], out=b["work2"]), denominator)
        if self.implicit:
            self._adaptive_implicit(b, denominator.div_(self.lr))


def _spacing(eps, dtype):
    """The spacing of floats of ``dtype`` at ``eps`` (None for ``eps <= 0``)."""
    if eps <= 0:
        return None
    return torch.finfo(dtype).eps * 2.0 ** math.floor(math.log2(eps))


def _root_floor(spacing, root, dtype):
    """A floor under Adam's second moments that leaves every denominator
    ``sqrt(v) / root + eps`` bitwise as it is, or 0 for none.

    The CPU square root of 0 and of subnormal numbers is 20-60 times slower
    than of others, and the second moments of weights that never see a
    gradient (the constant pixels of MNIST, dead units) are 0. Below the
    floor, ``sqrt(v) / root`` (``root`` the smallest bias correction) is
    under a quarter of the spacing of floats at ``eps``, so adding ``eps``
    rounds it away, floor or not; ``clamp_min`` keeps NaN.
    """
    if spacing is None:
        return 0.0
    floor = (root * spacing / 4) ** 2
    return floor if floor >= torch.finfo(dtype).tiny else 0.0


class _RMSprop(StackedOptimizer):
    """``torch.optim.RMSprop``: alpha, eps, weight decay, momentum, centred."""

    @classmethod
    def needed(cls, group):
        momentum = ("momentum_buffer",) if group["momentum"] > 0 else ()
        centered = ("grad_avg",) if group["centered"] else ()
        return ("step", "square_avg", *momentum, *centered)

    def _setup(self, states):
        self.centered = bool(self.groups[0]["centered"])
        lr = self._hyper("lr")
        self.lr, self.neg_lr = self._column(lr), self._column([-a for a in lr])
        self.inverse_lr = self._column([1 / a if a else 0.0 for a in lr])
        alpha = self._hyper("alpha")
        self.alpha = self._column(alpha)
        self.one_minus_alpha = self._column([1 - a for a in alpha])
        self.square_weight = _shared([1 - a for a in alpha], self)
        self.eps = self._column(self._hyper("eps"))
        decay = self._hyper("weight_decay")
        self.weight_decay = self._column(decay) if any(decay) else None
        self._momenta = self._hyper("momentum")
        self.momentum = None
        self._state(states, "square_avg")
        if any(m > 0 for m in self._momenta):
            self.momentum = self._column(self._momenta)
            self._state(states, "momentum_buffer")
        if self.centered:
            self._state(states, "grad_avg")

    def _written(self, k):
        skip = () if self._momenta[k] > 0 else ("momentum_buffer",)
        return [name for name in self.state_names if name not in skip]

    def _step(self, b, g, scalars):
        param, square_avg, work = b["param"], b["square_avg"], b["work"]
        if self.explicit:
            self._add_penalty(b, g)
        if self.weight_decay is not None:
            g.addcmul_(param, self.weight_decay)
        _add_square(square_avg, g, self.alpha, self.square_weight, work)
        if self.centered:
            grad_avg = b["grad_avg"].lerp_(g, self.one_minus_alpha)
            average = torch.addcmul(square_avg, grad_avg, grad_avg, value=-1, out=work)
            average.sqrt_()
        else:
            average = torch.sqrt(square_avg, out=work)
        average.add_(self.eps)
        buffer = None
        if self.momentum is not None:
            buffer = b["momentum_buffer"].mul_(self.momentum).addcdiv_(g, average)
            param.addcmul_(buffer, self.lr, value=-1)
        else:
            param.addcdiv_(torch.mul(g, self.neg_lr, out=b["work2"]), average)
        if self.implicit:
            self._adaptive_implicit(b, average.div_(self.lr), buffer, self.inverse_lr)


class _Adagrad(StackedOptimizer):
    """``torch.optim.Adagrad``: learning-rate decay, weight decay, eps."""

    @classmethod
    def needed(cls, group):
        return ("step", "sum")

    def _setup(self, states):
        self._lr = self._hyper("lr")
        self._lr_decays = self._hyper("lr_decay")
        self.eps = self._column(self._hyper("eps"))
        decay = self._hyper("weight_decay")
        self.weight_decay = self._column(decay) if any(decay) else None
        # Torch fills a missing sum with the optimizer's default.
        initial = [o.defaults["initial_accumulator_value"] for o in self.optimizers]
        self._state(states, "sum", [float(value) for value in initial])

    def _scalars(self):
        # Torch's -clr = -lr / (1 + (step - 1) lr_decay), and the implicit
        # step's 1 / clr, at each candidate's count.
        size, inverse = [], []
        for lr, lr_decay, step in zip(
            self._lr, self._lr_decays, self.steps, strict=True
        ):
            decayed = 1 + (step - 1) * lr_decay
            size.append(-lr / decayed)
            inverse.append(decayed / lr if lr else math.inf)
        return self._column(size + inverse).view(2, -1, 1)

    def _step(self, b, g, scalars):
        param, total = b["param"], b["sum"]
        if self.explicit:
            self._add_penalty(b, g)
        if self.weight_decay is not None:
            g.addcmul_(param, self.weight_decay)
        total.addcmul_(g, g)
        deviation = torch.sqrt(total, out=b["work"]).add_(self.eps)
        param.addcdiv_(torch.mul(g, scalars[0], out=b["work2"]), deviation)
        if self.implicit:
            self._adaptive_implicit(b, deviation.mul_(scalars[1]))


def _shared(values, optimizer):
    """``values``' one value if every candidate has it, else their column."""
    return values[0] if len(set(values)) == 1 else optimizer._column(values)


def _add_square(average, g, decay, weight, work):
    """``average = decay * average + weight * g * g``, rounded as torch rounds it.

    ``weight`` is one float for every candidate or a ``(K, 1)`` column.
    """
    average.mul_(decay)
    if isinstance(weight, float):
        average.addcmul_(g, g, value=weight)
    else:
        average.addcmul_(g, torch.mul(g, weight, out=work))


_ALGORITHMS = {
    SGD: _SGD,
    Adam: _Adam,
    AdamW: _Adam,
    RMSprop: _RMSprop,
    Adagrad: _Adagrad,
}
