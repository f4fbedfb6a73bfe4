import torch

from .._constraints import PROBABILITY, SIZE, StrOptions
from ._fisher import squared_gradients
from ._importance import ImportancePenalty, parameter_names
from ._quadratic import (
    check_number,
    check_parameter_list,
    likelihood,
    output_mask_transform,
    trainable_parameters,
)


class EWC(ImportancePenalty):
    """Elastic weight consolidation, separate or online.

    Pulls each parameter toward its value at the end of earlier tasks, in
    proportion to its diagonal Fisher information ``F`` on those tasks
    (Kirkpatrick et al., "Overcoming catastrophic forgetting in neural
    networks", PNAS 2017):

    - ``mode="separate"``: ``lam/2 * sum_t sum_j F_t,j (theta_j - theta*_t,j)^2``
      over all earlier tasks ``t``. It is kept as a single quadratic (summed
      precision, combined centre and a constant), so a training step costs
      the same whatever the number of tasks. With ``decay < 1`` older tasks
      weigh ``decay`` less at each new task.
    - ``mode="online"`` (Schwarz et al., "Progress & Compress", ICML 2018):
      ``F <- decay * F + F_new`` and one anchor, the parameters at the end of
      the previous task.

    The Fisher is the mean over samples of the squared **per-sample** gradient
    of ``log p(y|x)`` (never the square of a mini-batch gradient), computed
    exactly with one batched pass per chunk and dropout/batch-norm in eval
    mode. For a regressor, the unit-variance Gaussian log-likelihood (squared
    error) takes its place. When a task arrives in several chunks, its Fisher
    is the sample-weighted mean of the chunks' Fishers, each taken after its
    chunk was trained.

    Parameters
    ----------
    lam : float, default=1.0
        Strength of the penalty.
    mode : {"separate", "online"}, default="separate"
        One quadratic per task, or one running Fisher and one anchor.
    decay : float, default=1.0
        Weight of the accumulated Fisher at each new task (``gamma``).
    fisher : {"empirical", "true", "sampled"}, default="empirical"
        ``"empirical"`` uses the true labels; ``"true"`` the exact expectation
        over the model's predictive distribution; ``"sampled"`` one label
        drawn from it per sample.
    n_samples : int or None, default=None
        Estimate the Fisher on at most this many samples of each chunk (drawn
        at random); None uses them all.
    batch_size : int, default=1024
        Chunk size of the Fisher computation (memory only, same result).

    Attributes
    ----------
    fisher_ : dict of str to Tensor
        The Fisher of the latest task, by parameter name (while the task
        trains, its mean over the chunks so far).
    precision_ : list of Tensor or None
        The accumulated precision (summed Fishers) of the quadratic.
    centre_ : list of Tensor or None
        Its centre: the anchor (online), or the precision-weighted mean of the
        task anchors (separate).
    offset_ : float
        The constant that makes the single quadratic equal the sum of the
        per-task ones (separate mode), divided by ``lam / 2``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import ContinualClassifier
    >>> from skcl.penalties import EWC
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(100, 4)), np.arange(100) % 2
    >>> clf = ContinualClassifier(penalty=EWC(lam=100), max_epochs=1)
    >>> clf = clf.fit(X, y, task_id=np.repeat([0, 1], 50))
    >>> sorted(clf.penalty_.fisher_)[:2]
    ['layers.0.bias', 'layers.0.weight']
    """

    _parameter_constraints: dict = {  # noqa: RUF012
        **ImportancePenalty._parameter_constraints,
        "mode": [StrOptions({"separate", "online"})],
        "decay": [PROBABILITY],
        "fisher": [StrOptions({"empirical", "true", "sampled"})],
        "n_samples": [SIZE, None],
        "batch_size": [SIZE],
    }

    def __init__(
        self,
        *,
        lam=1.0,
        mode="separate",
        decay=1.0,
        fisher="empirical",
        n_samples=None,
        batch_size=1024,
    ):
        self.lam = lam
        self.mode = mode
        self.decay = decay
        self.fisher = fisher
        self.n_samples = n_samples
        self.batch_size = batch_size

    def initialize(self, net):
        super().initialize(net)
        self.fisher_ = None
        self.precision_ = None
        self.centre_ = None
        self.offset_ = 0.0

    def check_state(self, net, X, y):
        """Also check the precision (>= 0), centre, Fisher and offset."""
        check_parameter_list(self.precision_, net, "precision_", nonnegative=True)
        check_parameter_list(self.centre_, net, "centre_")
        if (self.precision_ is None) != (self.centre_ is None):
            raise ValueError("precision_ and centre_ must be both set or both None.")
        check_number(self.offset_, "offset_")
        if self.fisher_ is not None:
            names = parameter_names(net)
            if not isinstance(self.fisher_, dict) or list(self.fisher_) != names:
                raise ValueError(f"fisher_ should hold the parameters {names}.")
            fisher = list(self.fisher_.values())
            check_parameter_list(fisher, net, "fisher_", nonnegative=True)
        super().check_state(net, X, y)

    def importance(self, net, X, y):
        if self.n_samples is not None and len(X) > self.n_samples:
            rows = torch.randperm(len(X), generator=net.generator_)[: self.n_samples]
            X, y = X[rows.to(X.device)], y[rows.to(X.device)]
        seed = None
        if self.fisher == "sampled":  # the labels' generator, on X's device
            seed = int(torch.randint(2**63 - 1, (), generator=net.generator_))
        fisher = squared_gradients(
            net.module_,
            X,
            y,
            loss=likelihood(net),
            fisher=self.fisher,
            batch_size=self.batch_size,
            output_transform=output_mask_transform(net),
            random_state=seed,
        )
        return [fisher[name] for name in parameter_names(net)]

    def consolidate(self, net, X, y):
        super().consolidate(net, X, y)
        self.fisher_ = dict(
            zip(parameter_names(net), self.task_importance_, strict=True)
        )

    def fold(self, net, fisher):
        anchor = [p.detach().clone() for _, p in trainable_parameters(net)]
        if self.precision_ is None:
            self.precision_ = [f.clone() for f in fisher]
            self.centre_ = anchor
            return
        torch._foreach_mul_(self.precision_, self.decay)
        if self.mode == "online":
            torch._foreach_add_(self.precision_, fisher)
            self.centre_ = anchor
            return
        # W (theta - c)^2 + F (theta - a)^2
        #   = (W + F) (theta - (W c + F a) / (W + F))^2 + W F / (W + F) (c - a)^2
        self.offset_ *= self.decay
        total = torch._foreach_add(self.precision_, fisher)
        safe = [t.clamp_min(torch.finfo(t.dtype).tiny) for t in total]
        gap = torch._foreach_sub(self.centre_, anchor)
        self.offset_ += sum(
            (w * f / s * d.square()).sum().item()
            for w, f, s, d in zip(self.precision_, fisher, safe, gap, strict=True)
        )
        self.centre_ = [
            (w * c + f * a) / s
            for w, c, f, a, s in zip(
                self.precision_, self.centre_, fisher, anchor, safe, strict=True
            )
        ]
        self.precision_ = total

    def quadratic(self, net):
        if self.precision_ is None:
            return None
        return self.centre_, self.precision_, self.offset_
