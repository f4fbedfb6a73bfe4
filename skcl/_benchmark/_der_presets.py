"""The DER paper's protocol and best settings per method and memory size.

Buzzega et al., "Dark Experience for General Continual Learning" (NeurIPS
2020), as Mammoth's ``utils/best_args.py`` lists them (../shared/DESIGN.md
section 7): an MLP 784-100-100-10 with Xavier-uniform weights, plain SGD
(no momentum, no weight decay), one epoch per task; batch 10 on Seq-MNIST,
128 on P-MNIST and R-MNIST. A setting given as three values is for memories
of 200, 500 and 5,120 samples; another memory size takes the column of the
largest of these at most its size (200's below 200).

Mammoth's strengths mapped onto skcl's (read from ``models/ewc_on.py``,
``models/si.py`` and ``models/agem.py`` at 7ab9db9; both penalties enter
the step as a gradient of the loss, ``penalty_step="explicit"``):

- **oEWC** adds ``e_lambda * sum_j F_j (theta_j - theta*_j)^2`` (no 1/2) to
  the batch-mean cross-entropy, skcl's :class:`~skcl.penalties.EWC`
  ``lam/2 * sum_j F_j (...)^2`` to the same mean, so ``lam = 2 * e_lambda``;
  ``gamma`` is ``decay`` (``F <- gamma F + F_new``, one anchor at the end of
  the last task: ``mode="online"``). Mammoth's Fisher is, after each task,
  the mean over the task's training samples of the squared per-sample
  gradient of ``log p(y|x)`` at the true label, weighted by ``p(y|x)``
  (divided by the number of batches times the batch size, the sample
  count up to the last batch's shortfall). skcl's ``fisher="empirical"``
  is the same mean without the weight: equal where the network is sure of
  the label, larger on the samples it gets wrong.
- **SI** adds ``c * sum_j Omega_j (theta_j - theta*_j)^2`` (no 1/2), so
  ``lam = 2 * c``; ``xi`` is :class:`~skcl.penalties.SI`'s ``xi`` (``Omega
  += omega / (Delta^2 + xi)``, summed over tasks, no decay). Mammoth's path
  integral adds ``lr * g^2`` per step, ``g`` the gradient of the task loss
  plus the penalty after it clips every element to [-1, 1], which is the
  step it takes: ``-g * delta_theta`` as skcl's, but with the penalty's
  gradient in ``g`` where skcl (as Zenke et al.'s code) takes the task
  loss's alone, and Mammoth's SI steps are clipped, skcl's are not.
- **A-GEM** (``models/agem.py``, not ``agem_r``) fills its memory at the end
  of each task with ``M // T`` random samples of it, and refers only to the
  tasks that ended: ``AGEM(memory="episodic", memory_size=M // T)``, the
  latest ``M // T`` samples of each task's shuffled epoch.
- **LwF** (``models/lwf.py``) adds ``alpha`` times the cross-entropy between
  the old and new networks' ``softmax(z / T)`` on the old classes, which
  has KL's gradient; skcl's :class:`~skcl.penalties.LwF` adds ``lam * T^2 *
  KL``: ``lam = alpha / T^2``. Its ``wd_reg * sum theta^2`` in the loss is
  SGD's ``weight_decay = 2 * wd_reg``. Not in skcl: before each task after
  the first, Mammoth trains the output layer alone one epoch on the new
  task's outputs (the old network's logits are taken after it), and its
  cross-entropy covers only the classes seen so far.
- **JOINT** (``models/joint.py``) trains a fresh network with a fresh SGD,
  after the last task, one epoch over the shuffled union of all tasks, at
  the batch size and ``lr`` of the run; ``best_args.py`` lists no ``lr``
  for it: SGD's is used.
"""

from ..penalties import EWC, SI, LwF
from ..replay import AGEM, DER, DERPP, ER, GEM, BiC, ICaRL

SIZES = (200, 500, 5120)
_BASE = dict(
    module__hidden_sizes=(100, 100),
    module__init="xavier_uniform",
    momentum=0.0,
    max_epochs=1,
)
DER_REGIMES = {
    "der-seq-mnist": {"base": dict(_BASE, batch_size=10)},
    "der-permuted-mnist": {"base": dict(_BASE, batch_size=128)},
    "der-rotated-mnist": {"base": dict(_BASE, batch_size=128)},
}
# GEM's gamma is its margin; oEWC's lam is 2 * e_lambda, SI's 2 * c, LwF's
# alpha / T^2 and its weight decay 2 * wd_reg (see above). BiC has no
# DER-paper setting: it takes iCaRL's; JOINT none listed: it takes SGD's.
_SEQ = {
    "naive": dict(lr=0.03),
    "joint": dict(lr=0.03),
    "online-ewc": dict(lr=0.03, lam=2 * 90.0, decay=1.0),
    "si": dict(lr=0.1, lam=2 * 1.0, xi=0.9),
    "lwf": dict(
        lr=0.03, lam=1.0 / 2.0**2, temperature=2.0, optimizer__weight_decay=1e-3
    ),
    "er": dict(lr=(0.01, 0.1, 0.1), memory_batch_size=10),
    "gem": dict(lr=(0.01, 0.03, 0.1), margin=(1.0, 0.5, 1.0)),
    "agem": dict(lr=0.1, memory_batch_size=128),
    "icarl": dict(lr=0.1, memory_batch_size=10),
    "bic": dict(lr=0.1, memory_batch_size=10),
    "der": dict(
        lr=(0.03, 0.03, 0.1), memory_batch_size=(10, 128, 128), alpha=(0.2, 1.0, 0.5)
    ),
    "der++": dict(
        lr=(0.03, 0.03, 0.1),
        memory_batch_size=(128, 10, 64),
        alpha=(0.2, 1.0, 0.2),
        beta=(1.0, 0.5, 0.5),
    ),
}
BEST = {
    "der-seq-mnist": _SEQ,
    "der-permuted-mnist": {
        "naive": dict(lr=0.2),
        "joint": dict(lr=0.2),
        "online-ewc": dict(lr=0.1, lam=2 * 0.7, decay=1.0),
        "si": dict(lr=0.1, lam=2 * 0.5, xi=1.0),
        "er": dict(lr=0.2, memory_batch_size=128),
        "gem": dict(lr=0.1, margin=0.5),
        "agem": dict(lr=0.1, memory_batch_size=128),
        "der": dict(lr=0.2, memory_batch_size=128, alpha=(1.0, 1.0, 0.5)),
        "der++": dict(
            lr=(0.1, 0.2, 0.2),
            memory_batch_size=128,
            alpha=(1.0, 1.0, 0.5),
            beta=(1.0, 0.5, 1.0),
        ),
    },
    "der-rotated-mnist": {
        "naive": dict(lr=0.2),
        "joint": dict(lr=0.2),
        "online-ewc": dict(lr=0.1, lam=2 * 0.7, decay=1.0),
        "si": dict(lr=0.1, lam=2 * 1.0, xi=1.0),
        "er": dict(lr=0.2, memory_batch_size=128),
        "gem": dict(lr=0.01, margin=0.5),
        "agem": dict(lr=(0.1, 0.3, 0.3), memory_batch_size=128),
        "der": dict(lr=0.2, memory_batch_size=128, alpha=(1.0, 0.5, 0.5)),
        "der++": dict(
            lr=(0.1, 0.2, 0.2),
            memory_batch_size=128,
            alpha=(1.0, 0.5, 0.5),
            beta=(0.5, 1.0, 0.5),
        ),
    },
}
_REPLAYS = {
    "er": ER,
    "der": DER,
    "der++": DERPP,
    "icarl": ICaRL,
    "bic": BiC,
}
_PENALTIES = {
    "online-ewc": lambda **kw: EWC(mode="online", **kw),
    "si": lambda **kw: SI(**kw),
    "lwf": lambda **kw: LwF(**kw),
}
_ESTIMATOR = ("lr", "optimizer__weight_decay")


def der_params(strategy, regime, overrides, *, n_tasks):
    """Return the estimator parameters of ``strategy`` in the DER paper's setting.

    ``overrides`` as in :func:`strategy_params`; ``memory_size`` (default
    200) picks the column of the settings and sizes the memory (GEM's is
    split equally between the tasks, as the DER-era code fills it, and
    A-GEM's). ``overrides["lam"]`` replaces the penalties' strength in
    skcl's scale.
    """
    from ._presets import OVERRIDES

    best = BEST[regime]
    if strategy not in best:
        raise ValueError(
            f"{strategy} has no setting in the DER paper on {regime}; choose from "
            f"{', '.join(best)}."
        )
    size = overrides.get("memory_size") or SIZES[0]
    column = max([i for i, s in enumerate(SIZES) if s <= size], default=0)
    setting = {
        k: v[column] if isinstance(v, tuple) else v for k, v in best[strategy].items()
    }
    params = dict(DER_REGIMES[regime]["base"])
    params.update({k: setting.pop(k) for k in _ESTIMATOR if k in setting})
    params.update(
        {
            OVERRIDES[k]: v
            for k, v in overrides.items()
            if k in OVERRIDES and v is not None
        }
    )
    if strategy in _PENALTIES:
        lam = overrides.get("lam")
        setting["lam"] = setting["lam"] if lam is None else lam
        params["penalty"] = _PENALTIES[strategy](**setting)
        if strategy != "lwf" and overrides.get("penalty_step") is None:
            params["penalty_step"] = "explicit"
    elif strategy == "gem":
        params["replay"] = GEM(memory_size=max(1, size // n_tasks), **setting)
    elif strategy == "agem":
        per_task = max(1, size // n_tasks)
        params["replay"] = AGEM(memory="episodic", memory_size=per_task, **setting)
    elif strategy in _REPLAYS:
        params["replay"] = _REPLAYS[strategy](memory_size=size, **setting)
    return params
