"""The implicit (proximal) step of a sum of quadratic penalties."""

import torch

_ADAM = (torch.optim.Adam, torch.optim.AdamW)
SUPPORTED_OPTIMIZERS = (
    torch.optim.SGD,
    *_ADAM,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
)


def check_implicit_optimizer(optimizer):
    """Raise ValueError if the implicit step does not know ``optimizer``'s update."""
    if not isinstance(optimizer, SUPPORTED_OPTIMIZERS):
        names = ", ".join(cls.__name__ for cls in SUPPORTED_OPTIMIZERS)
        raise ValueError(
            f"penalty_step='implicit' needs the step size of the optimizer, known "
            f"for {names} (and their subclasses), not {type(optimizer).__name__}. "
            "Use penalty_step='explicit' to add the penalties' gradients instead."
        )
    for group in optimizer.param_groups:
        if group.get("maximize", False):
            raise ValueError(
                "penalty_step='implicit' minimizes the penalties and cannot run "
                "with an optimizer that maximizes (maximize=True)."
            )


class ImplicitQuadraticStep:
    """Apply quadratic penalties implicitly, after the optimizer's own step.

    The penalties ``lam_k/2 * sum_j w_kj (theta_j - c_kj)^2`` fold into one
    quadratic with precision ``W = sum_k lam_k w_k`` and centre
    ``c = sum_k lam_k w_k c_k / W``. Once the optimizer has stepped with the
    task loss's gradient alone (``theta_t``), :meth:`apply` moves each
    parameter to ``theta' = (theta_t + a c) / (1 + a)`` with ``a = eta W``,
    ``eta`` the optimizer's step size for that coordinate:

    - SGD: the penalty's gradient is taken at the new point, which is exact
      for momentum, dampening and Nesterov momentum: ``eta = lr * kappa``
      with ``kappa = rho`` (``1 + momentum * rho`` with Nesterov) and
      ``rho = 1 - dampening`` (1 at a buffer's first step), and the momentum
      buffer gets ``rho * (theta_t - theta') / eta``, the penalty's gradient,
      as if it had been part of the step's gradient.
    - RMSprop: ``eta = lr / (sqrt(square_avg) + eps)`` (centred if the
      optimizer is), the momentum buffer corrected as for SGD.
    - Adam, AdamW: ``eta = lr / (sqrt(v_hat) + eps)``, Adam's per-coordinate
      step size; the moments keep the task gradient only (decoupled, as
      AdamW's weight decay is).
    - Adagrad: ``eta = clr / (sqrt(sum) + eps)``.

    Whatever ``a > 0``, the parameter moves toward ``c`` and never past it,
    and the fixed points are those of the penalised objective. The fold is
    computed once per chunk: the penalties' quadratics must not change while
    a chunk trains.

    Parameters
    ----------
    params : list of Tensor
        The trainable parameters, in the order of the forms' tensors.
    optimizer : torch.optim.Optimizer
        The optimizer that steps ``params``.
    forms : list of (float, list of Tensor, list of Tensor or None)
        ``(lam, centres, weights)`` of each quadratic; weights None for ones.
    """

    def __init__(self, params, optimizer, forms):
        check_implicit_optimizer(optimizer)
        self.params = params
        self.optimizer = optimizer
        self.precision, self.centre = fold_quadratics(params, forms)
        # Unit weights only (L2, L2Init): one precision for every coordinate.
        unit = all(weights is None for _, _, weights in forms)
        self.scalar = sum(lam for lam, _, _ in forms) if unit else None
        group_of = {
            id(p): group for group in optimizer.param_groups for p in group["params"]
        }
        self.groups = []
        for group in optimizer.param_groups:
            rows = [i for i, p in enumerate(params) if group_of.get(id(p)) is group]
            if rows:
                self.groups.append(_Group(self, group, rows))
        self.momentum = [
            g for g in self.groups if g.kind is torch.optim.SGD and g.group["momentum"]
        ]

    @torch.no_grad()
    def apply(self):
        """Move the parameters after ``optimizer.step()``; update its state."""
        for group in self.groups:
            group.apply()

    @torch.no_grad()
    def before_step(self):
        """Read what SGD with momentum needs from before ``optimizer.step()``."""
        for group in self.momentum:
            group.before_step()


def fold_quadratics(params, forms):
    """Return the summed precision and the combined centre of ``forms``.

    Raises FloatingPointError if the precision is not finite.
    """
    precision = [torch.zeros_like(p) for p in params]
    for lam, _, weights in forms:
        if weights is None:
            torch._foreach_add_(precision, lam)
        else:
            torch._foreach_add_(precision, weights, alpha=lam)
    if not all(torch.isfinite(w).all() for w in precision):
        raise FloatingPointError(
            "the penalties' summed precision (lam * importance) is not finite "
            "in the parameters' dtype."
        )
    if len(forms) == 1:
        return precision, [c.detach() for c in forms[0][1]]
    safe = [w.clamp_min(torch.finfo(w.dtype).tiny) for w in precision]
    centre = [torch.zeros_like(p) for p in params]
    for lam, centres, weights in forms:
        for i, c in enumerate(centres):
            share = lam / safe[i] if weights is None else lam * weights[i] / safe[i]
            centre[i].addcmul_(share, c)
    return precision, centre


class _Group:
    """The implicit step of the parameters of one optimizer group."""

    def __init__(self, step, group, rows):
        self.group = group
        self.params = [step.params[i] for i in rows]
        self.precision = [step.precision[i] for i in rows]
        self.scalar = step.scalar
        self.centre = [step.centre[i] for i in rows]
        self.state = step.optimizer.state
        self.kind = next(
            cls for cls in SUPPORTED_OPTIMIZERS if isinstance(step.optimizer, cls)
        )
        self.work = [torch.empty_like(p) for p in self.params]
        self.had_buffers = True
        self._eta = None

    def apply(self):
        if self.kind is torch.optim.SGD:
            self._apply_sgd()
            return
        work = self.work
        for w, p, c in zip(work, self.params, self.centre, strict=True):
            torch.sub(p, c, out=w)
        torch._foreach_mul_(work, self._adaptive_shrink())  # theta_t - theta'
        torch._foreach_sub_(self.params, work)
        if self.kind is torch.optim.RMSprop and self.group["momentum"]:
            buffers = [self.state[p]["momentum_buffer"] for p in self.params]
            torch._foreach_add_(buffers, work, alpha=1.0 / float(self.group["lr"]))

    def before_step(self):
        group = self.group
        if group["dampening"]:  # a buffer's first step is not dampened
            self.had_buffers = "momentum_buffer" in self.state[self.params[0]]
        if not group["nesterov"]:
            scale = 1.0 / float(group["lr"])
            for w, p in zip(self.work, self.params, strict=True):
                torch.mul(p, scale, out=w)

    def _apply_sgd(self):
        # theta' = theta_t + q (c - theta_t) with q = a / (1 + a). The buffer
        # gets rho * W (theta' - c), the penalty's gradient at theta', which
        # without Nesterov makes it (theta - theta') / lr, theta before the step.
        shrink = self._sgd_shrink()
        group = self.group
        buffers = [self.state[p].get("momentum_buffer") for p in self.params]
        work = self.work
        if not group["nesterov"]:
            torch._foreach_lerp_(self.params, self.centre, shrink)
            if group["momentum"]:
                torch._foreach_sub_(work, self.params, alpha=1.0 / float(group["lr"]))
                # The new buffers are the workspace: swap instead of copying.
                for i, p in enumerate(self.params):
                    self.state[p]["momentum_buffer"], work[i] = work[i], buffers[i]
            return
        for w, p, c in zip(work, self.params, self.centre, strict=True):
            torch.sub(p, c, out=w)
        rho = 1.0 - group["dampening"] if self.had_buffers else 1.0
        scale = rho / self._eta
        if self.scalar is None:
            torch._foreach_addcmul_(buffers, work, shrink, value=scale)
            torch._foreach_addcmul_(self.params, work, shrink, value=-1.0)
        else:
            torch._foreach_add_(buffers, work, alpha=scale * shrink)
            torch._foreach_add_(self.params, work, alpha=-shrink)

    def _sgd_shrink(self):
        eta = float(self.group["lr"]) * self._kappa()
        if eta != self._eta:
            self._eta = eta
            if self.scalar is None:
                self._shrink = [_ratio(eta * w) for w in self.precision]
            else:
                a = eta * self.scalar
                self._shrink = 1.0 / (1.0 + 1.0 / a) if a > 0 else 0.0
        return self._shrink

    def _adaptive_shrink(self):
        """Return ``a / (1 + a)`` per coordinate, ``a = eta W``."""
        lr = float(self.group["lr"])
        if self.kind is torch.optim.RMSprop:
            return self._adaptive(lr, self._rmsprop_denominator())
        if self.kind is torch.optim.Adagrad:
            return self._adaptive(1.0, self._adagrad_denominator())
        return self._adaptive(lr, self._adam_denominator())

    def _kappa(self):
        """SGD's factor on a gradient term's step: ``eta = lr * kappa``."""
        group = self.group
        if not group["momentum"]:
            return 1.0
        rho = 1.0 - group["dampening"] if self.had_buffers else 1.0
        return 1.0 + group["momentum"] * rho if group["nesterov"] else rho

    def _adaptive(self, lr, denominator):
        # a / (1 + a) = W / (W + denominator / lr); W = 0 gives 0, W = inf 1.
        torch._foreach_div_(denominator, lr)
        torch._foreach_add_(denominator, self.precision)
        return torch._foreach_div(self.precision, denominator)

    def _rmsprop_denominator(self):
        group = self.group
        states = [self.state[p] for p in self.params]
        if group["centered"]:
            square = [
                s["square_avg"].addcmul(s["grad_avg"], s["grad_avg"], value=-1)
                for s in states
            ]
        else:
            square = [s["square_avg"] for s in states]
        denominator = torch._foreach_sqrt(square)
        torch._foreach_add_(denominator, group["eps"])
        return denominator

    def _adam_denominator(self):
        group = self.group
        states = [self.state[p] for p in self.params]
        name = "max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"
        denominator = torch._foreach_sqrt([s[name] for s in states])
        for d, s in zip(denominator, states, strict=True):
            correction = 1 - group["betas"][1] ** float(s["step"])
            d.div_(correction**0.5).add_(group["eps"])
        return denominator

    def _adagrad_denominator(self):
        group = self.group
        states = [self.state[p] for p in self.params]
        denominator = torch._foreach_sqrt([s["sum"] for s in states])
        torch._foreach_add_(denominator, group["eps"])
        for d, s in zip(denominator, states, strict=True):
            decayed = 1 + (float(s["step"]) - 1) * group["lr_decay"]
            d.mul_(decayed / float(group["lr"]))  # the step size is 1 / d
        return denominator


def _ratio(a):
    """``a / (1 + a)`` elementwise, also at ``a = 0`` and ``a = inf``."""
    return (1 + a.reciprocal()).reciprocal()
